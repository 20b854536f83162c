/** The corruption channel a vector campaign's config describes (projection or mask), at the data's dimension. */
import type { VectorChannel } from '../../models/channels/channel.js';
import { vectorChannel } from '../../models/channels/index.js';
import type { VectorCampaignConfig } from '../../workflows/config.js';

export function channelOf(config: VectorCampaignConfig): VectorChannel {
  return vectorChannel(config.channel, config.data.dim);
}
