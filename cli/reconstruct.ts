/**
 * `diffem reconstruct ID --store URI --observations FILE --out FILE [--samples K] [--seed S]
 * [--stream PATH]`: posterior reconstructions of new observations with a finished DiffEM
 * campaign's last conditional model, by the E-step's own sampler (ancestral, `estep.steps`
 * steps) on ONNX Runtime.
 *
 * The observations file is safetensors in the layout of the campaign's own data shards:
 * vectors `y` [n, obsDim] and `A` [n, obsDim, dim]; images `y` [n, H, W, C] with `masks`
 * [n, H, W, 1] (pixel-mask) or `sigmas` [n] and `kernels` [n, kernelSize] (blur).
 *
 * The K samples are drawn in one batch, the observations repeated K times (row k n + i is
 * sample k of observation i), from stream PATH under the seed (`reconstruct` and the
 * campaign's seed by default). With K = 1, a shard of the campaign's data and the stream of
 * its final E-step (`estep/lap-L/shard-I`, L = laps done + 1, as the final lap record's seeds
 * name it) the output is that E-step's samples bit for bit. The file written holds the mean
 * and the per-element standard deviation (population, over the K samples) and the samples
 * [K, n, ...]; a .png (images) shows observation | mean | std.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { domainOf } from '../activities/index.js';
import type { ImageObservations } from '../models/channels/image-operators.js';
import { imageGridPng } from '../activities/images/figures.js';
import { ConsoleProgress } from '../engines/local/progress.js';
import { DATA_MAX, DATA_MIN } from '../models/datasets/dataset.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { decodeSafetensors, encodeSafetensors } from '../models/safetensors.js';
import { storeFor } from '../store/open.js';
import { finalModels, writeFileWhole } from '../engines/final-models.js';
import { outputKinds, parseCount, parseSeed } from './options.js';

export const RECONSTRUCT_USAGE =
  'diffem reconstruct ID --store URI --observations FILE.safetensors --out FILE.safetensors|FILE.png [--samples K] [--seed S] [--stream PATH]';

export interface ReconstructOptions {
  store: string;
  campaignId: string;
  /** The observations file's bytes and its name (for errors). */
  observations: { bytes: Uint8Array; source: string };
  samples: number;
  seed?: number;
  /** Stream path under the seed, '/'-separated; default `reconstruct`. */
  stream?: string;
  onStep?: (done: number, total: number) => void;
}

export interface Reconstruction {
  /** [K, n, ...]. */
  samples: NDArray;
  mean: NDArray;
  std: NDArray;
  /** Images only: what the PNG shows in its first column. */
  observed?: ImageObservations;
  seed: number;
  stream: string;
}

/** Mean and population standard deviation over the K samples of each element. */
function moments(all: NDArray, k: number): { samples: NDArray; mean: NDArray; std: NDArray } {
  const per = all.data.length / k;
  const n = all.shape[0] / k;
  const shape = [n, ...all.shape.slice(1)];
  const mean = ndarray(shape);
  const std = ndarray(shape);
  for (let j = 0; j < per; j++) {
    let sum = 0;
    for (let s = 0; s < k; s++) sum += all.data[s * per + j];
    const m = sum / k;
    let sq = 0;
    for (let s = 0; s < k; s++) sq += (all.data[s * per + j] - m) ** 2;
    mean.data[j] = m;
    std.data[j] = Math.sqrt(sq / k);
  }
  return { samples: ndarray([k, ...shape], all.data), mean, std };
}

export async function reconstruct(options: ReconstructOptions): Promise<Reconstruction> {
  const store = storeFor(options.store);
  const { manifest, conditional } = await finalModels(store, options.campaignId);
  const config = manifest.config;
  if (config.method !== 'diffem' || !conditional) {
    throw new Error(
      `campaign '${options.campaignId}' has no conditional model to reconstruct with (method ${config.method}; reconstruct uses DiffEM's)`,
    );
  }
  const { source } = options.observations;
  const { tensors } = decodeSafetensors(options.observations.bytes, source);
  const seed = options.seed ?? config.seed;
  const stream = options.stream ?? 'reconstruct';
  const path = stream.split('/');
  if (path.some((p) => p === '')) throw new Error(`--stream '${stream}': empty path segment`);
  const rng = Rng.derive(seed, ...path);
  const { samples, observed } = await domainOf(config).drawPosteriors(
    store,
    conditional,
    { tensors, source },
    options.samples,
    rng,
    options.onStep,
  );
  return { ...moments(samples, options.samples), ...(observed && { observed }), seed, stream };
}

/** std in [0, max] drawn on the grid's [DATA_MIN, DATA_MAX] scale. */
function stdForDisplay(std: NDArray): NDArray {
  const max = std.data.reduce((m, v) => Math.max(m, v), 0) || 1;
  return ndarray(
    std.shape,
    std.data.map((v) => DATA_MIN + (v / max) * (DATA_MAX - DATA_MIN)),
  );
}

export async function reconstructCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      store: { type: 'string' },
      observations: { type: 'string' },
      out: { type: 'string', multiple: true },
      samples: { type: 'string', default: '8' },
      seed: { type: 'string' },
      stream: { type: 'string' },
    },
  });
  if (positionals.length !== 1 || !values.store || !values.observations || !values.out?.length) {
    throw new Error(`usage: ${RECONSTRUCT_USAGE}`);
  }
  const samples = parseCount(values.samples, '--samples');
  const seed = values.seed === undefined ? undefined : parseSeed(values.seed, '--seed');
  const outputs = outputKinds(values.out, ['safetensors', 'png']);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(values.observations);
  } catch (error) {
    throw new Error(`--observations ${values.observations}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const bar = new ConsoleProgress();
  const result = await reconstruct({
    store: values.store,
    campaignId: positionals[0],
    observations: { bytes, source: values.observations },
    samples,
    seed,
    stream: values.stream,
    onStep: (done, total) => bar.heartbeat('reconstruct', { step: done, steps: total }),
  });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
  const png = outputs.find((o) => o.kind === 'png');
  if (png && !result.observed) throw new Error(`--out ${png.path}: PNG panels are drawn for image campaigns only`);
  const n = result.mean.shape[0];
  for (const out of outputs) {
    const file =
      out.kind === 'png' && result.observed
        ? await imageGridPng(
            [
              {
                title: 'observation',
                images: result.observed.y,
                ...(result.observed.ops.kind === 'mask' && { masks: result.observed.ops.masks }),
              },
              { title: `mean of ${samples}`, images: result.mean },
              { title: 'std (scaled to its max)', images: stdForDisplay(result.std) },
            ],
            {
              title: `${positionals[0]}: reconstructions of ${values.observations}`,
              count: Math.min(n, 16),
              columns: 4,
            },
          )
        : encodeSafetensors(
            { mean: result.mean, std: result.std, samples: result.samples },
            { campaign: positionals[0], seed: String(result.seed), stream: result.stream, samples: String(samples) },
          );
    await writeFileWhole(out.path, file);
    process.stdout.write(
      `wrote ${out.path}: ${samples} posterior samples of ${n} observations (seed ${result.seed}, stream ${result.stream})\n`,
    );
  }
}
