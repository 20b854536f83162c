/**
 * The final prior's own recipe (`prior.batchSize`, `prior.lr`, ... over `training`): the
 * config checks name the bad field, absent overrides leave the prior's recipe exactly
 * `training` (so older campaigns resume), and a real image campaign trains its prior with
 * the override while its M-steps keep `training`'s, as the step journal records.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { getTensors } from '../store/tensors.js';
import { storeFor } from '../store/open.js';
import { ConfigError, parseCampaignConfig, priorModel, priorTraining } from '../workflows/config.js';
import { REPO, runCli, type CliResult } from './helpers/cli.js';

/** A compiled script of the repository (here the sweep under dist/bench) as a child process. */
function runNode(args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

type Doc = Record<string, Record<string, unknown>>;

const tinyImages = async (): Promise<Doc> =>
  parse(await readFile(path.join(REPO, 'examples', 'mnist-masked-tiny.yaml'), 'utf8')) as Doc;

function issuesOf(doc: unknown): string[] {
  try {
    parseCampaignConfig(doc, 'prior.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues;
  }
  assert.fail('expected a ConfigError');
}

test('without overrides the prior trains with `training` exactly', async () => {
  const config = parseCampaignConfig(await tinyImages(), 'tiny');
  assert.equal(JSON.stringify(priorTraining(config)), JSON.stringify(config.training));
});

test('each prior override replaces its training field and no other', async () => {
  const doc = await tinyImages();
  doc.prior = { ...doc.prior, batchSize: 32, lr: 0.002, emaDecay: 0.999, timeDistribution: 'uniform' };
  const config = parseCampaignConfig(doc, 'tiny');
  const prior = priorTraining(config);
  assert.deepEqual(
    { batchSize: prior.batchSize, lr: prior.lr, emaDecay: prior.emaDecay, timeDistribution: prior.timeDistribution },
    { batchSize: 32, lr: 0.002, emaDecay: 0.999, timeDistribution: 'uniform' },
  );
  assert.deepEqual({ ...prior, batchSize: 8, lr: 0.005, emaDecay: 0.95, timeDistribution: 'beta33' }, config.training);
  assert.equal(config.training.batchSize, 8, 'the M-step keeps its own batch');
});

test('a bad prior override is refused, naming its field', async () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ lr: -1 }, /^prior\.lr:/],
    [{ batchSize: 2.5 }, /^prior\.batchSize:/],
    [{ timeDistribution: 'gaussian' }, /^prior\.timeDistribution:/],
    [{ emaDecay: 1 }, /^prior\.emaDecay:/],
    [{ batchsize: 16 }, /prior\.batchsize/],
    [{ gradientShards: 3 }, /^prior\.gradientShards: .*batch size \(8\)/],
    [{ batchSize: 6, gradientShards: 4 }, /^prior\.gradientShards:/],
  ];
  for (const [override, expected] of cases) {
    const doc = await tinyImages();
    doc.prior = { ...doc.prior, ...override };
    const issues = issuesOf(doc);
    assert.ok(
      issues.some((i) => expected.test(i)),
      `${JSON.stringify(override)}: ${issues.join('; ')}`,
    );
  }
  // A prior batch the M-step's shards do not divide: the prior's batch is the field to change.
  const doc = await tinyImages();
  doc.training = { ...doc.training, gradientShards: 4 };
  doc.prior = { ...doc.prior, batchSize: 6 };
  assert.ok(issuesOf(doc).some((i) => /^prior\.batchSize:/.test(i)));
});

test('prior.model widens the prior alone, and a field of the other network kind or a bad merge is refused by name', async () => {
  const doc = await tinyImages();
  doc.prior = { ...doc.prior, model: { levels: [16, 32, 32], blocksPerLevel: 2 } };
  const config = parseCampaignConfig(doc, 'tiny');
  assert.deepEqual(
    { ...priorModel(config), levels: [8, 16, 16], blocksPerLevel: 1 },
    config.model,
    'every other field is the model’s',
  );
  assert.deepEqual(config.model.kind === 'unet' && config.model.levels, [8, 16, 16], 'the M-step keeps its network');
  const without = parseCampaignConfig(await tinyImages(), 'tiny');
  assert.equal(priorModel(without), without.model);

  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ hidden: [64] }, /^prior\.model\.hidden: .*unet/],
    // The tiny example's 4 groups do not divide 6 channels: the merged network is checked.
    [{ levels: [6, 16] }, /^prior\.model\.levels\.0: 4 groups do not divide 6/],
    [{ attentionLevels: [3] }, /^prior\.model\.attentionLevels\.0: level 3 does not exist/],
    [{ embedDim: 33 }, /^prior\.model\.embedDim: embedDim must be even/],
    [{ kind: 'mlp' }, /prior\.model/],
  ];
  for (const [override, expected] of cases) {
    const bad = await tinyImages();
    bad.prior = { ...bad.prior, model: override };
    const issues = issuesOf(bad);
    assert.ok(
      issues.some((i) => expected.test(i)),
      `${JSON.stringify(override)}: ${issues.join('; ')}`,
    );
  }
  const vector = parse(await readFile(path.join(REPO, 'examples', 'manifold-tiny.yaml'), 'utf8')) as Doc;
  vector.prior = { ...vector.prior, model: { levels: [8] } };
  assert.ok(issuesOf(vector).some((i) => /^prior\.model\.levels: .*mlp/.test(i)));
  vector.prior = { ...vector.prior, model: { hidden: [32, 32] } };
  assert.deepEqual(priorModel(parseCampaignConfig(vector, 'v')), {
    ...parseCampaignConfig(vector, 'v').model,
    hidden: [32, 32],
  });
});

test('the shipped MNIST example is a valid config', async () => {
  const doc = parse(await readFile(path.join(REPO, 'examples', 'mnist-masked.yaml'), 'utf8')) as unknown;
  const config = parseCampaignConfig(doc, 'mnist-masked.yaml');
  assert.equal(config.model.kind, 'unet');
});

interface JournalRecord {
  step: string;
  output?: { steps?: number; trainingEvaluations?: number; gradientShards?: number };
}

async function journal(store: string, id: string, step: string): Promise<JournalRecord> {
  return JSON.parse(
    await readFile(path.join(store, 'campaigns', id, 'steps', `${step}.json`), 'utf8'),
  ) as JournalRecord;
}

let finished: { dir: string; store: string } | null = null;

test('an image campaign trains its prior with the prior recipe and its M-step with training', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'diffem-prior-recipe-'));
  const doc = await tinyImages();
  // The tiny example shrunk further: no DiffEM lap, a handful of steps; the point is which
  // recipe each training ran with, not what it learnt.
  doc.data = { ...doc.data, count: 32, heldout: 32 };
  doc.em = { ...doc.em, laps: 0, gaussianIterations: 2, shardSize: 32 };
  doc.estep = { steps: 4 };
  doc.training = { ...doc.training, steps: 6, firstSteps: 6, batchSize: 8, checkpointEvery: 3 };
  doc.prior = {
    steps: 5,
    samples: 16,
    samplerSteps: 3,
    batchSize: 4,
    lr: 0.001,
    gradientShards: 2,
    model: { levels: [12, 16, 16] },
  };
  doc.metrics = { samples: 16, fid: { features: 'mnist-classifier', classifierSteps: 5, referenceCount: 64 } };
  const config = path.join(dir, 'prior-recipe.yaml');
  await writeFile(config, JSON.stringify(doc));
  const store = path.join(dir, 'store');
  const result = await runCli(['run', config, '--store', store, '--id', 'recipe']);
  assert.equal(result.code, 0, result.stderr);

  const prior = await journal(store, 'recipe', 'final/prior');
  assert.equal(prior.output?.steps, 5);
  assert.equal(prior.output?.trainingEvaluations, 5 * 4 * 2, 'the prior trained on batches of prior.batchSize');
  assert.equal(prior.output?.gradientShards, 2, 'the prior split its batches as prior.gradientShards says');
  const mStep = await journal(store, 'recipe', 'lap-000/train');
  assert.equal(mStep.output?.trainingEvaluations, 6 * 8 * 2, 'the M-step trained on batches of training.batchSize');
  assert.equal(mStep.output?.gradientShards, 1);
  // The prior's network is prior.model's (12 channels at the finest level), the M-step's the model's (8).
  const artifacts = storeFor(store);
  const widthOf = async (key: string): Promise<number> => {
    const ref = await artifacts.head(key);
    assert.ok(ref, key);
    const { tensors } = await getTensors(artifacts, ref);
    return tensors['down.0.blocks.0.conv1.weight'].shape[3];
  };
  assert.equal(await widthOf('campaigns/recipe/final/prior/weights.safetensors'), 12);
  assert.equal(await widthOf('campaigns/recipe/lap-000/train/weights.safetensors'), 8);
  assert.ok(existsSync(path.join(store, 'campaigns', 'recipe', 'summary.json')));
  finished = { dir, store };
});

interface SweepResult {
  data: string;
  recipe: string;
  imagesSeen: number;
  fid: number | null;
  grid: string;
}

test("the prior sweep's 'campaign' recipe reproduces the campaign's own prior, and trains on the clean images too", async () => {
  assert.ok(finished, 'needs the campaign of the previous test');
  const out = path.join(finished.dir, 'sweep');
  const sweep = path.join(REPO, 'dist', 'bench', 'prior-sweep.js');
  const args = ['--store', finished.store, '--id', 'recipe', '--out', out, '--recipes', 'campaign'];
  const result = await runNode([sweep, ...args]);
  assert.equal(result.code, 0, result.stderr);
  const { results } = JSON.parse(await readFile(path.join(out, 'prior-sweep.json'), 'utf8')) as {
    results: SweepResult[];
  };
  assert.deepEqual(
    results.map((r) => `${r.data}/${r.recipe}`),
    ['diffem/campaign', 'clean/campaign'],
  );
  const summary = JSON.parse(
    await readFile(path.join(finished.store, 'campaigns', 'recipe', 'summary.json'), 'utf8'),
  ) as {
    priorMetrics: { fid: number };
  };
  const diffem = results[0];
  assert.equal(diffem.imagesSeen, 5 * 4);
  assert.equal(
    diffem.fid,
    Number(summary.priorMetrics.fid.toPrecision(4)),
    "the campaign's prior, retrained, scores the same",
  );
  assert.ok(results[1].fid !== null && results[1].fid !== diffem.fid, 'the clean images make another prior');
  for (const r of results) {
    const png = await readFile(path.join(out, r.grid));
    assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')], r.grid);
  }
  const table = await readFile(path.join(out, 'prior-sweep.md'), 'utf8');
  assert.match(table, /\| diffem \| campaign \|/);
  assert.match(table, /\| clean held-out \|/);

  // A run already in the table is not run again; an unknown recipe is refused by name.
  const again = await runNode([sweep, ...args]);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /steps x batch/);
  const bad = await runNode([sweep, ...args.slice(0, -1), 'campaign,fastest']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /unknown recipe 'fastest'/);
});
