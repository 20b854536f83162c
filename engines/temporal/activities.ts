/**
 * The two activities only the Temporal engine needs, both small writes to the store that the
 * embedded engine does in-process: the campaign manifest of a scheduled run (no client opened
 * it), and `status.json` (running, then done / failed / stopped), so that `diffem status`
 * reads a Temporal campaign like a local one.
 */
import { asActivity } from '../../activities/errors.js';
import { storeFor } from '../../activities/io.js';
import { putJson } from '../../activities/store/store.js';
import { manifestKey, openCampaign, statusKey, type CampaignStatus } from '../local/engine.js';
import type { TemporalEngineActivities } from '../../workflows/temporal.js';

export function createEngineActivities(): TemporalEngineActivities {
  return {
    openScheduledCampaign: (input) =>
      asActivity(async () => {
        const store = storeFor(input.store);
        const existed = await store.exists(manifestKey(input.campaignId));
        await openCampaign(store, input.campaignId, input.config, 'temporal');
        return { created: !existed };
      }),
    setCampaignStatus: (input) =>
      asActivity(async () => {
        const status: CampaignStatus = {
          status: input.status,
          updatedAt: new Date().toISOString(),
          ...(input.error !== undefined && { error: input.error }),
          ...(input.errorType !== undefined && { errorType: input.errorType }),
          ...(input.step !== undefined && { step: input.step }),
        };
        await putJson(storeFor(input.store), statusKey(input.campaignId), status);
      }),
  };
}
