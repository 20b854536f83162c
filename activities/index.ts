/**
 * The campaign's activities by name: what a Temporal worker registers and what the embedded
 * engine calls. Each decodes its input, lets the campaign's domain do the work, and returns
 * small JSON (artifact refs, metrics). Each is idempotent: re-running it writes the same keys
 * with the same bytes.
 */
import { putJson } from '../store/store.js';
import { storeFor } from '../store/open.js';
import { isImageConfig, type CampaignConfig } from '../workflows/config.js';
import { campaignKeys } from '../workflows/keys.js';
import type { CampaignActivities } from '../workflows/types.js';
import { timedActivity } from './activity.js';
import { mStepIsConditional, type Domain } from './domain.js';
import { imageDomain } from './images/domain.js';
import { vectorDomain } from './vector/domain.js';
import { asActivity } from './errors.js';

/** The one place where a campaign's kind is told apart. */
export function domainOf(config: CampaignConfig): Domain {
  return isImageConfig(config) ? imageDomain(config) : vectorDomain(config);
}

export function createActivities(): CampaignActivities {
  return {
    prepareData: timedActivity((input) => domainOf(input.config).prepareData(input)),
    shardDataset: timedActivity((input) => domainOf(input.config).shardDataset(input)),
    initializeGaussian: timedActivity((input) => domainOf(input.config).initializeGaussian(input)),
    trainConditional: timedActivity((input) =>
      domainOf(input.config).train(input, { role: 'train', conditional: mStepIsConditional(input.config) }),
    ),
    posteriorSample: timedActivity((input) => domainOf(input.config).posteriorSample(input)),
    evaluate: timedActivity((input) => domainOf(input.config).evaluate(input)),
    trainPrior: timedActivity((input) => domainOf(input.config).train(input, { role: 'prior', conditional: false })),
    samplePrior: timedActivity((input) => domainOf(input.config).samplePrior(input)),
    renderFigures: timedActivity((input) => domainOf(input.config).renderFigures(input)),
    recordLap: (input) =>
      asActivity(() =>
        putJson(storeFor(input.store), campaignKeys.lapRecord(input.campaignId, input.record.lap), input.record),
      ),
    finishCampaign: (input) =>
      asActivity(() => putJson(storeFor(input.store), campaignKeys.summary(input.campaignId), input.summary)),
  };
}
