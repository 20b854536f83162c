/**
 * Evaluation of an image lap, against what the campaign hid from itself:
 *
 *   psnr   mean PSNR of the reconstructions against the hidden clean images of the same
 *          observations, all of them (peak-to-peak 4, the width of [-2, 2]);
 *   ssim   mean SSIM on at most `metrics.samples` of them (11x11 Gaussian window);
 *   fid    Frechet distance of features of at most `metrics.samples` reconstructions (uint8-
 *          quantised) to those of the clean reference set, the train split by default
 *          (`fid.ts`; absent with `metrics.fid.features: none`);
 *   inception_score  of the same reconstructions, with `metrics.fid.inceptionScore`.
 *
 * Reconstructions are clamped to the data range [-2, 2] first, as any image would be before
 * it is shown or saved. Subsets come from stream `metrics/lap-k`. Each lap also writes its
 * grid, observations | reconstructions | ground truth (`figures/lap-00k.png`, `figures/final.png`).
 */
import { psnr, ssim } from '../../models/metrics/images.js';
import { ndarray, takeRows, type NDArray } from '../../models/ndarray.js';
import { Rng } from '../../models/rng.js';
import type { ImageCampaignConfig } from '../../workflows/config.js';
import type { ArtifactRef, EvaluateInput, EvaluateOutput, Metrics } from '../../workflows/types.js';
import { BadInputError } from '../errors.js';
import { tensorOf } from '../io.js';
import { storeFor } from '../../store/open.js';
import { getTensors } from '../../store/tensors.js';
import { campaignKeys, stageName } from '../../workflows/keys.js';
import type { Untimed } from '../activity.js';
import { lapLabel } from '../labels.js';
import { imageShape, loadImageSamples, observationsOf } from './common.js';
import { fidOf, type ImageTruth } from './fid.js';
import { imageGridPng, type GridPanel } from './figures.js';
import type { ArtifactStore } from '../../store/store.js';

export function clampToData(x: NDArray): NDArray {
  const out = ndarray(x.shape);
  for (let i = 0; i < x.data.length; i++) out.data[i] = Math.min(2, Math.max(-2, x.data[i]));
  return out;
}

export async function readTruth(store: ArtifactStore, ref: ArtifactRef): Promise<ImageTruth> {
  const truth = JSON.parse(new TextDecoder().decode(await store.getVerified(ref))) as ImageTruth;
  if (truth.kind !== 'images')
    throw new BadInputError('ShapeMismatch', `${ref.key}: not the truth of an image campaign`);
  return truth;
}

/** The hidden clean images of the observations, [n, H, W, C]. */
export async function hiddenImages(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  clean: ArtifactRef,
): Promise<NDArray> {
  const { height, width, channels } = imageShape(config);
  return tensorOf((await getTensors(store, clean)).tensors, 'latent', clean.key, [height, width, channels]);
}

export interface Preview {
  /** The observations panel: y, with its masks when masked. */
  observations: GridPanel;
  hidden: NDArray;
}

/** The preview observations of the figures (`data/preview.safetensors`). */
export async function loadPreview(
  store: ArtifactStore,
  config: ImageCampaignConfig,
  truth: ImageTruth,
): Promise<Preview> {
  const { tensors } = await getTensors(store, truth.preview);
  const obs = observationsOf(config, tensors, truth.preview.key);
  const { height, width, channels } = imageShape(config);
  return {
    observations: { title: 'observations', images: obs.y, masks: obs.ops.kind === 'mask' ? obs.ops.masks : undefined },
    hidden: tensorOf(tensors, 'latent', truth.preview.key, [height, width, channels]),
  };
}

function round(x: number): number {
  return Number(x.toPrecision(6));
}

export async function evaluateImages(
  config: ImageCampaignConfig,
  input: EvaluateInput,
): Promise<Untimed<EvaluateOutput> & { figures: ArtifactRef[] }> {
  const { lap } = input;
  const store = storeFor(input.store);
  const x = clampToData(await loadImageSamples(store, config, input.samples));
  const hidden = await hiddenImages(store, config, input.clean);
  if (hidden.shape[0] !== x.shape[0]) {
    throw new BadInputError('ShapeMismatch', `${x.shape[0]} reconstructions for ${hidden.shape[0]} observations`);
  }
  const rng = Rng.derive(config.seed, 'metrics', `lap-${lap}`);
  const n = x.shape[0];
  const k = Math.min(n, config.metrics.samples);
  const subset = rng.permutation(n).subarray(0, k);
  const metrics: Metrics = {
    psnr: round(psnr(x, hidden).mean),
    ssim: round(ssim(takeRows(x, subset), takeRows(hidden, subset)).mean),
  };
  const truth = await readTruth(store, input.truth);
  const quality = await fidOf(store, config, truth.fid, x, rng.fork('fid'));
  if (Number.isFinite(quality.fid)) metrics.fid = round(quality.fid);
  if (Number.isFinite(quality.inceptionScore)) metrics.inception_score = round(quality.inceptionScore);

  const preview = await loadPreview(store, config, truth);
  const shown = preview.hidden.shape[0];
  const index = Array.from({ length: shown }, (_, i) => i);
  const label = lapLabel(input, 'estep');
  const png = await imageGridPng(
    [
      preview.observations,
      { title: 'reconstructions', images: takeRows(x, index) },
      { title: 'ground truth (hidden)', images: preview.hidden },
    ],
    {
      title: `${input.campaignId}: ${label}, PSNR ${metrics.psnr.toFixed(2)} dB${metrics.fid !== undefined ? `, FID ${metrics.fid.toFixed(2)}` : ''}`,
      count: shown,
      columns: 4,
    },
  );
  const figure = await store.put(campaignKeys.figure(input.campaignId, stageName(input.final ? 'final' : lap)), png);
  return {
    metrics,
    figures: [figure],
  };
}
