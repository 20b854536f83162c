/**
 * The two activities only the Temporal engine needs, both small writes to the store that the
 * embedded engine does in-process: the campaign manifest of a scheduled run (no client opened
 * it), and `status.json` (running, then done / failed / stopped), so that `diffem status`
 * reads a Temporal campaign like a local one.
 */
import { asActivity } from '../../activities/errors.js';
import { storeFor } from '../../store/open.js';
import { openCampaign, readManifest, writeStatus } from '../records.js';
import type { TemporalEngineActivities } from '../../workflows/temporal.js';

export function createEngineActivities(): TemporalEngineActivities {
  return {
    openScheduledCampaign: (input) =>
      asActivity(async () => {
        const store = storeFor(input.store);
        const existed = (await readManifest(store, input.campaignId)) !== null;
        await openCampaign(store, input.campaignId, input.config, 'temporal');
        return { created: !existed };
      }),
    setCampaignStatus: (input) =>
      asActivity(async () => {
        await writeStatus(storeFor(input.store), input.campaignId, {
          status: input.status,
          ...(input.error !== undefined && { error: input.error }),
          ...(input.errorType !== undefined && { errorType: input.errorType }),
          ...(input.step !== undefined && { step: input.step }),
        });
      }),
  };
}
