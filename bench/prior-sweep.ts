/**
 * Prior sweep: trains the final prior of a finished image campaign again with a few named
 * recipes and budgets, on the campaign's stored final reconstructions ('diffem') and, as the
 * reference point, on the same observations' clean images ('clean': the best the recipe can
 * do with perfect reconstructions). Each run goes through the campaign's own prior stage
 * (`trainImageDenoiser` with role 'prior', the Heun sampler of `drawPriorImages`, the FID of
 * `fidOf` against the campaign's reference statistics), with the recipe as a `prior` override
 * of the campaign's config, so a recipe that wins here is a config line away.
 *
 * Writes, under --out: one PNG grid of samples per run (`{data}-{recipe}.png`), the table
 * `prior-sweep.md` (recipe, budget in images seen, FID, wall time) and `prior-sweep.json`.
 * It also measures the FID's own floor at this sample count: the FID of as many clean
 * held-out test images (never trained on) against the same reference.
 *
 *   node dist/bench/prior-sweep.js --store DIR --id ID --out DIR
 *        [--recipes a,b] [--data diffem,clean] [--samples N] [--stage final|K] [--budget F]
 *        [--sampler-steps a,b]
 *
 * --budget F scales every recipe's steps (a quick first pass at F = 0.5, say).
 * --sampler-steps 16,64 also samples each trained prior with those Heun step counts (one row
 * each; a prior trained by an earlier invocation is sampled again, not retrained).
 * --stage K trains on lap K's reconstructions instead of the final ones (to start a sweep
 * before a campaign has finished). Every run is stored as its own campaign-like prefix
 * (`{ID}-prior-{data}-{recipe}`) and checkpoints as the campaign's prior does, so an
 * interrupted sweep resumes; a run whose result is already in --out is not run again.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runInActivityContext, type ActivityContext } from '../activities/context.js';
import { imageGridPng } from '../activities/images/figures.js';
import { readTruth } from '../activities/images/evaluate.js';
import { fidOf } from '../activities/images/fid.js';
import { drawPriorImages } from '../activities/images/sample.js';
import { trainImageDenoiser } from '../activities/images/train.js';
import { requireCampaign } from '../engines/records.js';
import type { NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { storeFor } from '../store/open.js';
import type { ArtifactStore } from '../store/store.js';
import { getTensors, putTensors } from '../store/tensors.js';
import {
  isImageConfig,
  parseCampaignConfig,
  priorTraining,
  type ImageCampaignConfig,
  type PriorModelOverride,
  type PriorRecipe,
} from '../workflows/config.js';
import { campaignKeys, type Stage } from '../workflows/keys.js';
import type { ArtifactRef } from '../workflows/types.js';

interface Recipe {
  /** What the recipe tries, for the table. */
  note: string;
  steps: number;
  prior: PriorRecipe & { model?: PriorModelOverride };
}

/**
 * The recipes, each a `prior` block over the campaign's. 'campaign' is the campaign's own
 * (it reproduces the campaign's prior bit for bit on the final reconstructions).
 */
const RECIPES: Record<string, (config: ImageCampaignConfig) => Recipe> = {
  campaign: (c) => ({ note: "the campaign's prior block", steps: c.prior.steps, prior: {} }),
  'campaign-lr4e-3': (c) => ({ note: "the campaign's prior, lr 4e-3", steps: c.prior.steps, prior: { lr: 0.004 } }),
  'campaign-ema999': (c) => ({
    note: "the campaign's prior, EMA 0.999",
    steps: c.prior.steps,
    prior: { emaDecay: 0.999 },
  }),
  'campaign-lognormal': (c) => ({
    note: "the campaign's prior, log sigma ~ N(-0.5, 1.2^2)",
    steps: c.prior.steps,
    prior: { timeDistribution: 'lognormal' },
  }),
  'b32-lr2e-3': () => ({ note: 'batch 32, lr 2e-3', steps: 1500, prior: { batchSize: 32, lr: 0.002 } }),
  'b32-lr2e-3-ema999': () => ({
    note: 'batch 32, lr 2e-3, EMA 0.999',
    steps: 1500,
    prior: { batchSize: 32, lr: 0.002, emaDecay: 0.999 },
  }),
  'b32-lr1e-3': () => ({ note: 'batch 32, lr 1e-3', steps: 1500, prior: { batchSize: 32, lr: 0.001 } }),
  'b32-uniform': () => ({
    note: 'batch 32, lr 2e-3, t ~ U(0, 1)',
    steps: 1500,
    prior: { batchSize: 32, lr: 0.002, timeDistribution: 'uniform' },
  }),
  'b8-uniform': (c) => ({
    note: "the campaign's recipe, t ~ U(0, 1)",
    steps: c.prior.steps,
    prior: { timeDistribution: 'uniform' },
  }),
  'b8-x2': (c) => ({ note: "the campaign's recipe, twice the steps", steps: 2 * c.prior.steps, prior: {} }),
  'b32-x2': () => ({ note: 'batch 32, lr 2e-3, twice the steps', steps: 3000, prior: { batchSize: 32, lr: 0.002 } }),
  'b64-lr3e-3': () => ({
    note: 'batch 64, lr 3e-3 (more images per second than batch 32)',
    steps: 750,
    prior: { batchSize: 64, lr: 0.003 },
  }),
  'b32-w24': () => ({
    note: 'batch 32, lr 2e-3, U-Net 24/48/48',
    steps: 1500,
    prior: { batchSize: 32, lr: 0.002, model: { levels: [24, 48, 48] } },
  }),
  'b32-w32': () => ({
    note: 'batch 32, lr 2e-3, U-Net 32/64/64',
    steps: 1500,
    prior: { batchSize: 32, lr: 0.002, model: { levels: [32, 64, 64] } },
  }),
  'b32-deep': () => ({
    note: 'batch 32, lr 2e-3, 2 blocks per level',
    steps: 1500,
    prior: { batchSize: 32, lr: 0.002, model: { blocksPerLevel: 2 } },
  }),
};

type DataKind = 'diffem' | 'clean';

interface RunResult {
  data: DataKind;
  recipe: string;
  note: string;
  steps: number;
  batchSize: number;
  lr: number;
  emaDecay: number;
  timeDistribution: string;
  imagesSeen: number;
  /** Heun steps of the sampler (absent in rows written before the option: the campaign's). */
  samplerSteps?: number;
  /** FID of all the samples (--samples of them). */
  fid: number | null;
  /** FID of as many of them as the campaign's `prior.samples` (a subset drawn as the campaign draws it), to set beside the campaign's figure. */
  fidAtCampaignCount: number | null;
  trainSeconds: number;
  sampleSeconds: number;
  grid: string;
}

/** The reconstructions of a stage, one ref per shard, in shard order (as the campaign's final E-step wrote them). */
async function reconstructions(store: ArtifactStore, campaignId: string, stage: Stage): Promise<ArtifactRef[]> {
  const refs: ArtifactRef[] = [];
  for (let index = 0; ; index++) {
    const ref = await store.head(campaignKeys.posteriorShard(campaignId, stage, index));
    if (!ref) break;
    refs.push(ref);
  }
  if (refs.length === 0) {
    throw new Error(
      `campaign '${campaignId}' has no reconstructions at ${campaignKeys.posteriorShard(campaignId, stage, 0)}`,
    );
  }
  return refs;
}

/** The observations' hidden clean images, stored as one training set under the sweep's own prefix. */
async function cleanTrainingSet(
  store: ArtifactStore,
  campaignId: string,
  sweepId: string,
): Promise<{ ref: ArtifactRef; heldout: NDArray }> {
  const clean = await store.head(campaignKeys.clean(campaignId));
  if (!clean) throw new Error(`campaign '${campaignId}' has no clean data at ${campaignKeys.clean(campaignId)}`);
  const { tensors } = await getTensors(store, clean);
  if (!tensors.latent || !tensors.x) throw new Error(`${clean.key}: expected tensors 'latent' and 'x'`);
  const ref = await putTensors(store, campaignKeys.posteriorShard(sweepId, 'final', 0), { x: tensors.latent });
  return { ref, heldout: tensors.x };
}

/** Training progress on stderr every 100 steps; a fresh run (no earlier attempt's heartbeat to resume from). */
function progressContext(what: string): ActivityContext {
  return {
    attempt: 1,
    heartbeatDetails: undefined,
    heartbeat: (details) => {
      const { step, steps } = (details ?? {}) as { step?: number; steps?: number };
      if (step !== undefined && step % 100 === 0) process.stderr.write(`  ${what}: step ${step}/${steps}\n`);
    },
    signal: new AbortController().signal,
  };
}

function fidText(fid: number | null): string {
  return fid === null ? '-' : fid.toFixed(1);
}

interface Floor {
  samples: number;
  fid: number | null;
  campaignCount: number;
  fidAtCampaignCount: number | null;
}

function table(results: RunResult[], floor: Floor): string {
  const rows = results.map(
    (r) =>
      `| ${r.data} | ${r.recipe} | ${r.note} | ${r.steps} x ${r.batchSize} | ${r.imagesSeen} | ${r.lr} | ${r.emaDecay} | ${r.timeDistribution} | ${r.samplerSteps ?? '-'} | ${fidText(r.fid)} | ${fidText(r.fidAtCampaignCount)} | ${(r.trainSeconds / 60).toFixed(1)} | ${r.sampleSeconds.toFixed(0)} |`,
  );
  return [
    `| data | recipe | what | steps x batch | images seen | lr | EMA | t | Heun steps | FID (${floor.samples}) | FID (${floor.campaignCount}) | train min | sample s |`,
    `|---|---|---|---|---|---|---|---|---|---|---|---|---|`,
    ...rows,
    `| clean held-out | - | the FID's floor: real test images | - | - | - | - | - | - | ${fidText(floor.fid)} | ${fidText(floor.fidAtCampaignCount)} | - | - |`,
    '',
  ].join('\n');
}

function finite(x: number): number | null {
  return Number.isFinite(x) ? Number(x.toPrecision(4)) : null;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      store: { type: 'string' },
      id: { type: 'string' },
      out: { type: 'string' },
      recipes: { type: 'string', default: Object.keys(RECIPES).join(',') },
      data: { type: 'string', default: 'diffem,clean' },
      samples: { type: 'string' },
      stage: { type: 'string', default: 'final' },
      budget: { type: 'string', default: '1' },
      'sampler-steps': { type: 'string', default: '' },
    },
  });
  if (!values.store || !values.id || !values.out) {
    throw new Error(
      'usage: prior-sweep --store DIR --id ID --out DIR [--recipes a,b] [--data diffem,clean] [--samples N] [--stage final|K]',
    );
  }
  const campaignId = values.id;
  const out = values.out;
  const storeUri = values.store;
  const store = storeFor(storeUri);
  const manifest = await requireCampaign(store, campaignId);
  if (!isImageConfig(manifest.config)) throw new Error(`campaign '${campaignId}' is not an image campaign`);
  const base = manifest.config;
  const stage: Stage = values.stage === 'final' ? 'final' : Number(values.stage);
  if (stage !== 'final' && !(Number.isInteger(stage) && stage >= 0)) {
    throw new Error(`--stage must be 'final' or a lap number, got '${values.stage}'`);
  }
  const samples = values.samples === undefined ? base.prior.samples : Number(values.samples);
  if (!(Number.isInteger(samples) && samples > 0)) {
    throw new Error(`--samples must be a positive integer, got '${values.samples}'`);
  }
  const extraSamplerSteps = values['sampler-steps']
    .split(',')
    .filter(Boolean)
    .map((v) => {
      const n = Number(v);
      if (!(Number.isInteger(n) && n > 0)) throw new Error(`--sampler-steps: '${v}' is not a positive integer`);
      return n;
    });
  const budget = Number(values.budget);
  if (!(budget > 0)) throw new Error(`--budget must be a positive factor, got '${values.budget}'`);
  const recipeNames = values.recipes.split(',').filter(Boolean);
  for (const name of recipeNames) {
    if (!RECIPES[name])
      throw new Error(`--recipes: unknown recipe '${name}' (known: ${Object.keys(RECIPES).join(', ')})`);
  }
  const kinds = values.data.split(',');
  for (const kind of kinds) {
    if (kind !== 'diffem' && kind !== 'clean') throw new Error(`--data: '${kind}' is neither 'diffem' nor 'clean'`);
  }

  await mkdir(out, { recursive: true });
  const truthRef = await store.head(campaignKeys.truth(campaignId, 'truth.json'));
  if (!truthRef) throw new Error(`campaign '${campaignId}' has no truth.json (not prepared?)`);
  const truth = await readTruth(store, truthRef);
  const cleanSet = await cleanTrainingSet(store, campaignId, `${campaignId}-prior-clean-data`);
  const diffemSet = kinds.includes('diffem') ? await reconstructions(store, campaignId, stage) : [];

  // The FID's floor at each sample count: clean images no model saw, drawn as the campaign draws its subset.
  const campaignCount = base.prior.samples;
  const fidAt = async (images: NDArray, count: number): Promise<number | null> =>
    finite(
      (
        await fidOf(
          store,
          { ...base, metrics: { ...base.metrics, samples: count } },
          truth.fid,
          images,
          Rng.derive(base.seed, 'metrics', 'prior'),
        )
      ).fid,
    );
  const floor: Floor = {
    samples: Math.min(samples, cleanSet.heldout.shape[0]),
    fid: await fidAt(cleanSet.heldout, samples),
    campaignCount,
    fidAtCampaignCount: await fidAt(cleanSet.heldout, campaignCount),
  };
  process.stderr.write(
    `FID floor (clean held-out images): ${fidText(floor.fid)} at ${floor.samples}, ${fidText(floor.fidAtCampaignCount)} at ${campaignCount}\n`,
  );

  const resultsFile = join(out, 'prior-sweep.json');
  const results: RunResult[] = existsSync(resultsFile)
    ? (JSON.parse(await readFile(resultsFile, 'utf8')) as { results: RunResult[] }).results
    : [];
  const samplerStepsOf = (r: RunResult): number => r.samplerSteps ?? base.prior.samplerSteps;
  for (const data of kinds as DataKind[]) {
    for (const name of recipeNames) {
      const label = budget === 1 ? name : `${name}@${budget}x`;
      const named = RECIPES[name](base);
      const recipe = { ...named, steps: Math.max(1, Math.round(named.steps * budget)) };
      const parsed = parseCampaignConfig(
        { ...base, prior: { ...base.prior, ...recipe.prior, steps: recipe.steps, samples } },
        `recipe ${name}`,
      );
      if (!isImageConfig(parsed)) throw new Error(`recipe ${name}: not an image config`);
      const config: ImageCampaignConfig = parsed;
      const training = priorTraining(config);
      const runId = `${campaignId}-prior-${data}-${label.replace('@', '-')}`;
      const done = results.filter((r) => r.data === data && r.recipe === label);
      const missing = [...new Set([config.prior.samplerSteps, ...extraSamplerSteps])].filter(
        (n) => !done.some((r) => samplerStepsOf(r) === n),
      );
      if (missing.length === 0) continue;

      let onnx: ArtifactRef | null = null;
      let trainSeconds = done[0]?.trainSeconds ?? 0;
      if (done.length > 0) {
        // Trained by an earlier invocation: only the missing sampler settings are drawn.
        onnx = await store.head(campaignKeys.network(runId, 'prior', 'denoiser.onnx'));
      }
      if (!onnx) {
        process.stderr.write(
          `${data} ${label}: ${recipe.steps} steps x batch ${training.batchSize} (${recipe.note})\n`,
        );
        const trainStart = performance.now();
        const prior = await runInActivityContext(progressContext(`${data} ${label}`), () =>
          trainImageDenoiser(
            config,
            {
              store: storeUri,
              campaignId: runId,
              config,
              // The campaign's own prior lap, so the 'campaign' recipe draws the campaign's numbers.
              lap: base.em.laps + 1,
              samples: data === 'clean' ? [cleanSet.ref] : diffemSet,
              init: null,
            },
            { role: 'prior', conditional: false },
          ),
        );
        onnx = prior.onnx;
        trainSeconds = (performance.now() - trainStart) / 1000;
      }
      for (const samplerSteps of missing) {
        const sampled: ImageCampaignConfig = { ...config, prior: { ...config.prior, samplerSteps } };
        const suffix = samplerSteps === base.prior.samplerSteps ? '' : `-heun${samplerSteps}`;
        const sampleStart = performance.now();
        const x = await drawPriorImages(store, sampled, onnx, samples, Rng.derive(config.seed, 'prior-sample'));
        const sampleSeconds = (performance.now() - sampleStart) / 1000;
        // Kept, so another FID protocol can be applied later without retraining.
        await putTensors(
          store,
          `${campaignKeys.priorSamples(runId).replace(/\.safetensors$/, '')}${suffix}.safetensors`,
          { x },
          {
            sampler: 'heun',
            recipe: label,
            data,
          },
        );
        const grid = `${data}-${label.replace('@', '-')}${suffix}.png`;
        const fid = await fidAt(x, samples);
        const fidAtCampaignCount = await fidAt(x, campaignCount);
        await writeFile(
          join(out, grid),
          await imageGridPng([{ title: `${data} / ${label}: FID ${fidText(fid)}`, images: x }], {
            title: `${recipe.note}, ${recipe.steps} steps x ${training.batchSize}, Heun ${samplerSteps} steps`,
            count: 64,
            columns: 8,
            scale: 2,
          }),
        );
        results.push({
          data,
          recipe: label,
          note: recipe.note,
          steps: recipe.steps,
          batchSize: training.batchSize,
          lr: training.lr,
          emaDecay: training.emaDecay,
          timeDistribution: training.timeDistribution,
          imagesSeen: recipe.steps * training.batchSize,
          samplerSteps,
          fid,
          fidAtCampaignCount,
          trainSeconds: Math.round(trainSeconds),
          sampleSeconds: Math.round(sampleSeconds),
          grid,
        });
        process.stderr.write(
          `  ${data} ${label}, Heun ${samplerSteps}: FID ${fidText(fid)} (${fidText(fidAtCampaignCount)} at ${campaignCount}), training ${(trainSeconds / 60).toFixed(1)} min, sampling ${sampleSeconds.toFixed(0)} s\n`,
        );
        // Written after every run, so a long sweep shows its progress and resumes past it.
        await writeFile(resultsFile, JSON.stringify({ campaign: campaignId, stage, samples, floor, results }, null, 2));
        await writeFile(join(out, 'prior-sweep.md'), table(results, floor));
      }
    }
  }
  await writeFile(resultsFile, JSON.stringify({ campaign: campaignId, stage, samples, floor, results }, null, 2));
  await writeFile(join(out, 'prior-sweep.md'), table(results, floor));
  process.stdout.write(table(results, floor));
}

await main();
