/**
 * The campaign's activities by name: what a Temporal worker registers and what the
 * embedded engine calls. Each is idempotent: re-running it writes the same keys with the
 * same bytes.
 */
import type { CampaignActivities } from '../workflows/types.js';
import { prepareData, shardDataset } from './data.js';
import { evaluate } from './evaluate.js';
import { initializeGaussian } from './gaussian.js';
import { finishCampaign, recordLap, renderFigures } from './records.js';
import { posteriorSample, samplePrior } from './sample.js';
import { trainConditional, trainPrior } from './train.js';

export function createActivities(): CampaignActivities {
  return {
    prepareData,
    shardDataset,
    initializeGaussian,
    trainConditional,
    posteriorSample,
    evaluate,
    trainPrior,
    samplePrior,
    renderFigures,
    recordLap,
    finishCampaign,
  };
}
