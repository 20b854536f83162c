/** Temporal client entry (placeholder until the Temporal engine lands). */
import type { CampaignConfig } from '../../workflows/config.js';

export async function startTemporalCampaign(_options: { store: string; campaignId: string; config: CampaignConfig }): Promise<void> {
  throw new Error('the temporal engine is not available in this build');
}
