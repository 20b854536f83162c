/**
 * The campaign figures of an image campaign, drawn once at the end (each lap's own grid is
 * written by its evaluation):
 *
 *   figures/reconstructions.png   observations | lap 0 (Gaussian) | final E-step | ground truth
 *   figures/prior-samples.png     64 samples of the final unconditional prior (Heun)
 */
import { takeRows } from '../../models/ndarray.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { FigureInput, FigureOutput } from '../../workflows/types.js';
import { tensorOf } from '../io.js';
import { storeFor } from '../../store/open.js';
import { getTensors } from '../../store/tensors.js';
import { campaignKeys } from '../../workflows/keys.js';
import type { Untimed } from '../activity.js';
import { lapLabel } from '../labels.js';
import { imageShape, loadImageSamples } from './common.js';
import { clampToData, loadPreview, readTruth } from './evaluate.js';
import { imageGridPng, type GridPanel } from './figures.js';

export async function renderImageFigures(
  config: ImageCampaignConfig,
  input: FigureInput,
): Promise<Untimed<FigureOutput>> {
  const { campaignId } = input;
  const store = storeFor(input.store);
  const figures = [];
  const { height, width, channels } = imageShape(config);
  const truth = await readTruth(store, input.truth);
  const preview = await loadPreview(store, config, truth);
  const shown = preview.observations.images.shape[0];
  const index = Array.from({ length: shown }, (_, i) => i);
  const panels: GridPanel[] = [preview.observations];
  for (const lap of input.laps) {
    // The preview observations are the first rows of the first shard.
    const x = clampToData(await loadImageSamples(store, config, lap.samples.slice(0, 1)));
    panels.push({ title: lapLabel(lap, 'short'), images: takeRows(x, index) });
  }
  panels.push({ title: 'ground truth (hidden)', images: preview.hidden });
  const grid = await imageGridPng(panels, { title: `${campaignId}: DiffEM reconstructions`, count: shown, columns: 4 });
  figures.push(await store.put(campaignKeys.figure(campaignId, 'reconstructions'), grid));
  if (input.prior) {
    const x = clampToData(
      tensorOf((await getTensors(store, input.prior)).tensors, 'x', input.prior.key, [height, width, channels]),
    );
    const count = Math.min(64, x.shape[0]);
    const png = await imageGridPng(
      [
        {
          title: 'final prior samples (Heun sampler)',
          images: takeRows(
            x,
            Array.from({ length: count }, (_, i) => i),
          ),
        },
      ],
      {
        title: `${campaignId}: samples of the learned prior`,
        count,
        columns: 8,
      },
    );
    figures.push(await store.put(campaignKeys.figure(campaignId, 'prior-samples'), png));
  }
  return { figures };
}
