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
import { Rng } from '../models/rng.js';
import { putTensors } from '../store/tensors.js';
import { timedActivity } from './activity.js';
import { activityContext, stepReporter } from './context.js';
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
    samplePrior: timedActivity(async (input) => {
      // The final prior's samples by the deterministic Heun sampler (stream `prior-sample`).
      const domain = domainOf(input.config);
      const store = storeFor(input.store);
      const { seed } = input.config;
      const x = await domain.drawPrior(
        store,
        input.model,
        input.config.prior.samples,
        Rng.derive(seed, 'prior-sample'),
        stepReporter(activityContext()),
      );
      const samples = await putTensors(store, campaignKeys.priorSamples(input.campaignId), { x }, { sampler: 'heun' });
      const metrics = await domain.priorMetrics(store, x, input, Rng.derive(seed, 'metrics', 'prior'));
      return { samples, metrics };
    }),
    renderFigures: timedActivity((input) => domainOf(input.config).renderFigures(input)),
    recordLap: (input) =>
      asActivity(() =>
        putJson(storeFor(input.store), campaignKeys.lapRecord(input.campaignId, input.record.lap), input.record),
      ),
    finishCampaign: (input) =>
      asActivity(() => putJson(storeFor(input.store), campaignKeys.summary(input.campaignId), input.summary)),
  };
}
