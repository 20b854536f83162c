/**
 * sample and reconstruct on an image campaign (masked MNIST, shrunk to seconds): the PNG
 * outputs, the campaign's own prior samples and final E-step reproduced bit for bit from the
 * same seed and stream, and observations with the wrong operator for the campaign refused.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { stringify as toYaml } from 'yaml';
import { decodeSafetensors, encodeSafetensors } from '../models/safetensors.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { campaignKeys } from '../workflows/keys.js';
import { runCli } from './helpers/cli.js';

const CONFIG = {
  seed: 1,
  data: { kind: 'mnist', count: 64, heldout: 64 },
  channel: { kind: 'pixel-mask', rate: 0.5, noiseStd: 0.001 },
  schedule: { sigmaMin: 0.001, sigmaMax: 100 },
  model: { kind: 'unet', levels: [8, 16, 16], attentionLevels: [], embedDim: 32, groups: 4 },
  em: { laps: 1, gaussianIterations: 4, gaussianRank: 8, shardSize: 32, concurrency: 1 },
  estep: { steps: 6 },
  training: { steps: 10, batchSize: 8, checkpointEvery: 10, emaDecay: 0.95, timeDistribution: 'beta33' },
  prior: { steps: 10, samples: 16, samplerSteps: 6 },
  metrics: { samples: 64, fid: { features: 'none' } },
  runtime: { device: 'cpu' },
};

let dir = '';
let store = '';

function tensor(bytes: Uint8Array, name: string): NDArray {
  const t = decodeSafetensors(bytes).tensors[name];
  assert.ok(t, `tensor ${name}`);
  return t;
}

function sameBytes(a: NDArray, b: NDArray): boolean {
  return Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(
    Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
  );
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'diffem-after-images-'));
  store = join(dir, 'store');
  const config = join(dir, 'mini.yaml');
  await writeFile(config, toYaml(CONFIG));
  const run = await runCli(['run', config, '--store', store, '--id', 'mini']);
  assert.equal(run.code, 0, run.stderr);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("sample writes the campaign's own prior samples and a PNG grid", async () => {
  const out = join(dir, 'prior.safetensors');
  const png = join(dir, 'prior.png');
  const run = await runCli(['sample', 'mini', '--store', store, '--count', '16', '--out', out, '--out', png]);
  assert.equal(run.code, 0, run.stderr);
  const own = tensor(await readFile(join(store, campaignKeys.priorSamples('mini'))), 'x');
  const drawn = tensor(await readFile(out), 'x');
  assert.deepEqual(drawn.shape, [16, 28, 28, 1]);
  assert.ok(sameBytes(drawn, own));
  const meta = await sharp(await readFile(png)).metadata();
  assert.equal(meta.format, 'png');
});

test('reconstruct reproduces the final E-step of a shard and draws observation | mean | std', async () => {
  const shard = join(store, campaignKeys.dataShard('mini', 1));
  const out = join(dir, 'recon.safetensors');
  const png = join(dir, 'recon.png');
  const args = ['--observations', shard, '--samples', '1', '--stream', 'estep/lap-2/shard-1'];
  const run = await runCli(['reconstruct', 'mini', '--store', store, ...args, '--out', out, '--out', png]);
  assert.equal(run.code, 0, run.stderr);
  const own = tensor(await readFile(join(store, campaignKeys.posteriorShard('mini', 'final', 1))), 'x');
  assert.ok(sameBytes(tensor(await readFile(out), 'samples'), own));
  const meta = await sharp(await readFile(png)).metadata();
  assert.ok((meta.width ?? 0) > 3 * 28 * 4, `three panels: ${meta.width}px`);

  // Blur operators for a pixel-mask campaign: refused, naming the file and the missing masks.
  const { y } = decodeSafetensors(await readFile(shard)).tensors;
  const blur = join(dir, 'blur.safetensors');
  await writeFile(blur, encodeSafetensors({ y, sigmas: ndarray([y.shape[0]]), kernels: ndarray([y.shape[0], 9]) }));
  const bad = await runCli([
    'reconstruct',
    'mini',
    '--store',
    store,
    '--observations',
    blur,
    '--out',
    join(dir, 'b.png'),
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /blur\.safetensors: no tensor 'masks'/);
  assert.ok(!existsSync(join(dir, 'b.png')));
});
