/** The figure of a vector campaign: reconstructions of the first and last laps and prior samples against the true curve. */
import { curvePoint, type CurveParams } from '../../models/manifold.js';
import { ndarray } from '../../models/ndarray.js';
import { getJson } from '../../store/store.js';
import { storeFor } from '../../store/open.js';
import { getTensors } from '../../store/tensors.js';
import type { VectorCampaignConfig } from '../../workflows/config.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { FigureInput, FigureOutput } from '../../workflows/types.js';
import type { Untimed } from '../activity.js';
import { scatterPng } from '../figures/scatter.js';
import { tensorOf } from '../io.js';
import { lapLabel } from '../labels.js';
import { loadSamples } from './data.js';

export async function renderVectorFigures(
  config: VectorCampaignConfig,
  input: FigureInput,
): Promise<Untimed<FigureOutput>> {
  const { campaignId } = input;
  const store = storeFor(input.store);
  const curve = await getJson<CurveParams>(store, input.truth.key);
  const grid = 2000;
  const line = ndarray([grid, config.data.dim]);
  for (let i = 0; i < grid; i++) line.data.set(curvePoint(curve, i / (grid - 1)), i * config.data.dim);
  const rows = [];
  for (const lap of input.laps) {
    rows.push({ label: lapLabel(lap, 'long'), points: await loadSamples(store, config, lap.samples) });
  }
  if (input.prior) {
    rows.push({
      label: 'final prior samples',
      points: tensorOf((await getTensors(store, input.prior)).tensors, 'x', input.prior.key, [config.data.dim]),
    });
  }
  const png = await scatterPng({
    title: `${campaignId}: ${config.method} reconstructions vs the true curve (red)`,
    curve: line,
    rows,
  });
  const figure = await store.put(campaignKeys.figure(campaignId, 'reconstructions'), png);
  return { figures: [figure] };
}
