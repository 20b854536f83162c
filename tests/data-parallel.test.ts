/**
 * Data-parallel training: the number of gradient shards fixes the arithmetic, the number of
 * threads does not. The tiny manifold campaign with two shards, once on one thread and once
 * on two, must store byte-identical artifacts, and its lap records say how it ran. A run
 * resumed from a checkpoint on another thread count ends with the same weights. The U-Net,
 * whose convolutions and GroupNorms run on the fast kernels (OpenBLAS where installed),
 * trains to the same bits on one thread and on two.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { initMlpParams, mlpParamShapes } from '../models/denoisers/mlp.js';
import { initUnetParams, unetParamShapes, type UnetConfig } from '../models/denoisers/unet.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { logLinearSchedule } from '../models/schedule.js';
import { trainDataParallel } from '../models/training/data-parallel.js';
import type { TrainCheckpoint } from '../models/training/trainer.js';
import { REPO, runCli } from './helpers/cli.js';

interface TrainRecord {
  step: string;
  output?: { gradientShards?: number; trainThreads?: number };
}

let dir: string;
let config: string;

/** Every artifact digest a campaign recorded (lap histories and the final summary), by key. */
async function digests(store: string, id: string): Promise<Map<string, string>> {
  const result = await runCli(['history', id, '--store', store, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const laps = JSON.parse(result.stdout) as Array<{ artifacts: Array<{ key: string; sha256: string }> }>;
  const map = new Map(laps.flatMap((l) => l.artifacts.map((a) => [a.key, a.sha256] as [string, string])));
  const summary = JSON.parse(await readFile(path.join(store, 'campaigns', id, 'summary.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  for (const value of Object.values(summary)) {
    const ref = value as { key?: string; sha256?: string } | null;
    if (ref && typeof ref.key === 'string' && typeof ref.sha256 === 'string') map.set(ref.key, ref.sha256);
  }
  return map;
}

/** The journal records of the training steps (laps and the final prior). */
async function trainRecords(store: string, id: string): Promise<TrainRecord[]> {
  const root = path.join(store, 'campaigns', id, 'steps');
  const out: TrainRecord[] = [];
  if (!existsSync(root)) return out;
  for (const entry of await readdir(root, { recursive: true })) {
    if (!entry.endsWith('.json') || path.basename(entry).startsWith('.')) continue;
    const record = JSON.parse(await readFile(path.join(root, entry), 'utf8')) as TrainRecord;
    if (/train/.test(record.step)) out.push(record);
  }
  return out;
}

async function run(threads: number, store: string): Promise<void> {
  const result = await runCli(['run', config, '--store', store, '--id', 'dp'], {
    DIFFEM_TRAIN_THREADS: String(threads),
  });
  assert.equal(result.code, 0, result.stderr);
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-dp-'));
  const tiny = await readFile(path.join(REPO, 'examples', 'manifold-tiny.yaml'), 'utf8');
  // The fast kernels too (fused layers; OpenBLAS where installed): they must not depend on
  // the thread count either.
  const sharded = tiny
    .replace(/^training: \{/m, 'training: { gradientShards: 2,')
    .replace(/^metrics: (.*)$/m, 'metrics: $1\nruntime: { kernels: fast }');
  assert.match(sharded, /kernels: fast/);
  assert.notEqual(sharded, tiny, 'manifold-tiny.yaml has no one-line training map to extend');
  config = path.join(dir, 'tiny-2-shards.yaml');
  await writeFile(config, sharded);
});

test('two gradient shards give the same artifacts on one thread and on two', async () => {
  const one = path.join(dir, 'one');
  const two = path.join(dir, 'two');
  await run(1, one);
  await run(2, two);
  const a = await digests(one, 'dp');
  const b = await digests(two, 'dp');
  assert.ok(a.size > 10, `only ${a.size} artifacts recorded`);
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [key, sha] of a) assert.equal(b.get(key), sha, `${key} differs between 1 and 2 threads`);

  for (const [store, threads] of [
    [one, 1],
    [two, 2],
  ] as const) {
    const records = await trainRecords(store, 'dp');
    assert.ok(records.length >= 3, `found ${records.length} training records`);
    for (const record of records) {
      assert.equal(record.output?.gradientShards, 2, record.step);
      assert.equal(record.output?.trainThreads, threads, record.step);
    }
  }
});

test('a batch that the shards do not divide is refused, naming the field', async () => {
  const bad = path.join(dir, 'bad.yaml');
  const tiny = await readFile(path.join(REPO, 'examples', 'manifold-tiny.yaml'), 'utf8');
  await writeFile(bad, tiny.replace(/^training: \{/m, 'training: { gradientShards: 3,'));
  const result = await runCli(['run', bad, '--store', path.join(dir, 'bad'), '--id', 'bad']);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /training\.gradientShards/);
  assert.equal(existsSync(path.join(dir, 'bad', 'campaigns', 'bad', 'summary.json')), false);
});

test('a data-parallel run resumed from its checkpoint ends with the uninterrupted run’s weights', async () => {
  const network = { dim: 3, condDim: 2, hidden: [16, 16], embedDim: 8 };
  const rng = Rng.derive(11, 'dp-resume');
  const data = {
    x: ndarray([64, 3], rng.fillNormal(new Float32Array(64 * 3))),
    cond: ndarray([64, 2], rng.fillNormal(new Float32Array(64 * 2))),
  };
  const params = initMlpParams(network, rng);
  const shapes = mlpParamShapes(network).map(([, shape]) => shape);
  const options = {
    steps: 12,
    batchSize: 32,
    optimizer: { lr: 1e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, clip: 1, emaDecay: 0.9 },
    lrSchedule: 'cosine' as const,
    timeDistribution: 'beta-mixture' as const,
    schedule: logLinearSchedule(1e-3, 10),
    seed: 11,
    streamPath: ['dp-resume'],
  };
  const plan = { shards: 4, threads: 2 };
  const saved: TrainCheckpoint[] = [];
  const whole = await trainDataParallel({ kind: 'mlp', config: network }, shapes, data, { params }, options, plan, {
    lossEvery: 5,
    checkpoint: { every: 5, save: async (state) => void saved.push(state) },
  });
  assert.deepEqual(
    saved.map((s) => s.optimizer.step),
    [5, 10],
  );
  const resumed = await trainDataParallel(
    { kind: 'mlp', config: network },
    shapes,
    data,
    { params, resume: saved[0] },
    options,
    { shards: 4, threads: 1 },
    { lossEvery: 5 },
  );
  assert.deepEqual(resumed.losses, whole.losses);
  for (const [name, p] of Object.entries(whole.params)) {
    assert.deepEqual(resumed.params[name].data, p.data, name);
    assert.deepEqual(resumed.optimizer.ema?.[name].data, whole.optimizer.ema?.[name].data, name);
  }
});

test('U-Net training on the fast kernels gives the same weights on one thread and on two', async () => {
  const config: UnetConfig = {
    height: 8,
    width: 8,
    channels: 1,
    condChannels: 2,
    levels: [8, 16],
    blocksPerLevel: 1,
    attentionLevels: [1],
    embedDim: 8,
    dropout: 0.1,
    groups: 4,
  };
  const rng = Rng.derive(12, 'dp-unet');
  const data = {
    x: ndarray([32, 8, 8, 1], rng.fillNormal(new Float32Array(32 * 64))),
    cond: ndarray([32, 8, 8, 2], rng.fillNormal(new Float32Array(32 * 128))),
  };
  const params = initUnetParams(config, rng);
  const shapes = unetParamShapes(config).map(([, shape]) => shape);
  const options = {
    steps: 6,
    batchSize: 8,
    optimizer: { lr: 1e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, clip: 1, emaDecay: 0.9 },
    lrSchedule: 'cosine' as const,
    timeDistribution: 'beta33' as const,
    schedule: logLinearSchedule(1e-3, 1e2),
    seed: 12,
    streamPath: ['dp-unet'],
  };
  const train = (threads: number) =>
    trainDataParallel(
      { kind: 'unet', config },
      shapes,
      data,
      { params },
      options,
      { shards: 2, threads },
      {},
      { backend: 'wasm', kernels: 'fast' },
    );
  const one = await train(1);
  const two = await train(2);
  assert.deepEqual(two.losses, one.losses);
  let changed = 0;
  for (const [name, p] of Object.entries(one.params)) {
    assert.deepEqual(two.params[name].data, p.data, name);
    if (p.data.some((v, i) => v !== params[name].data[i])) changed++;
  }
  assert.ok(changed > 10, `training changed only ${changed} tensors`);
});
