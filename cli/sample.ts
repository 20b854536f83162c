/**
 * `diffem sample ID --store URI --count N --out FILE [--out FILE] [--seed S]`: draws from a
 * finished campaign's final prior with the campaign's own Heun sampler (`prior.samplerSteps`
 * steps on its noise schedule), on ONNX Runtime. The draws come from stream `prior-sample`
 * under the seed (the campaign's seed by default), so with the campaign's seed and
 * `prior.samples` draws the output is the campaign's own prior samples, bit for bit; another
 * seed gives another, equally reproducible set.
 *
 * `--out` ending in .safetensors writes the samples as tensor `x`; ending in .png (image
 * campaigns) writes a grid of them. Both may be given.
 */
import { parseArgs } from 'node:util';
import { imageGridPng } from '../activities/images/figures.js';
import { domainOf } from '../activities/index.js';
import { ConsoleProgress } from '../engines/local/progress.js';
import { requireCampaign } from '../engines/records.js';
import { encodeSafetensors } from '../models/safetensors.js';
import type { NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { storeFor } from '../store/open.js';
import { finalModels, writeFileWhole } from '../engines/final-models.js';
import { outputKinds, parseCount, parseSeed } from './options.js';

export const SAMPLE_USAGE = 'diffem sample ID --store URI --count N --out FILE.safetensors|FILE.png [--seed S]';

export interface SampleOptions {
  store: string;
  campaignId: string;
  count: number;
  seed?: number;
  onStep?: (done: number, total: number) => void;
}

/** The draws [count, ...] of the campaign's final prior. */
export async function samplePrior(options: SampleOptions): Promise<{ x: NDArray; image: boolean; seed: number }> {
  const store = storeFor(options.store);
  const { manifest, prior } = await finalModels(store, options.campaignId);
  if (!prior) throw new Error(`campaign '${options.campaignId}' has no final prior to sample`);
  const domain = domainOf(manifest.config);
  const seed = options.seed ?? manifest.config.seed;
  const x = await domain.drawPrior(store, prior, options.count, Rng.derive(seed, 'prior-sample'), options.onStep);
  return { x, image: domain.images, seed };
}

export async function sampleCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      store: { type: 'string' },
      count: { type: 'string' },
      out: { type: 'string', multiple: true },
      seed: { type: 'string' },
    },
  });
  if (positionals.length !== 1 || !values.store || !values.count || !values.out?.length) {
    throw new Error(`usage: ${SAMPLE_USAGE}`);
  }
  const count = parseCount(values.count, '--count');
  const seed = values.seed === undefined ? undefined : parseSeed(values.seed, '--seed');
  const outputs = outputKinds(values.out, ['safetensors', 'png']);
  const png = outputs.find((o) => o.kind === 'png');
  const { config } = await requireCampaign(storeFor(values.store), positionals[0]);
  if (png && !domainOf(config).images)
    throw new Error(`--out ${png.path}: PNG grids are drawn for image campaigns only`);
  const bar = new ConsoleProgress();
  const { x, seed: used } = await samplePrior({
    store: values.store,
    campaignId: positionals[0],
    count,
    seed,
    onStep: (done, total) => bar.heartbeat('sample', { step: done, steps: total }),
  });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
  for (const out of outputs) {
    const bytes =
      out.kind === 'png'
        ? await imageGridPng([{ title: 'prior samples', images: x }], {
            title: `${positionals[0]}: ${count} prior samples (seed ${used})`,
            count,
            columns: Math.ceil(Math.sqrt(count)),
          })
        : encodeSafetensors({ x }, { campaign: positionals[0], sampler: 'heun', seed: String(used) });
    await writeFileWhole(out.path, bytes);
    process.stdout.write(
      `wrote ${out.path}: ${count} samples of shape [${x.shape.slice(1).join(', ')}] (seed ${used})\n`,
    );
  }
}
