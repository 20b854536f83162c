/**
 * Image campaigns end to end through the real CLI:
 *   - the tiny masked-MNIST campaign: history --json has psnr, ssim and fid for every lap,
 *     the PSNR of the reconstructions rises from lap 0 (Gaussian) to the last lap, and the
 *     grids are real PNGs;
 *   - the paper's CIFAR-10 config, its sizes shrunk, on a small CIFAR-format dataset made here;
 *   - a bad dataset path fails with an error naming it, and a non-zero exit;
 *   - the image config's cross-field checks name the field to change.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import sharp from 'sharp';
import { parse, stringify } from 'yaml';
import { CIFAR10_DIR, CIFAR10_TEST_FILES, CIFAR10_TRAIN_FILES, encodeCifar10 } from '../models/datasets/cifar10.js';
import { ndarray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';
import { ConfigError, parseCampaignConfig } from '../workflows/config.js';
import { REPO, runCli } from './helpers/cli.js';

interface LapJson {
  lap: number;
  metrics: Record<string, number>;
  artifacts: Array<{ key: string; sha256: string; bytes: number }>;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

async function historyOf(store: string, id: string): Promise<LapJson[]> {
  const result = await runCli(['history', id, '--store', store, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as LapJson[];
}

async function example(name: string): Promise<Record<string, unknown>> {
  return parse(await readFile(path.join(REPO, 'examples', name), 'utf8')) as Record<string, unknown>;
}

async function assertPng(file: string): Promise<{ width: number; height: number }> {
  const bytes = await readFile(file);
  assert.deepEqual([...bytes.subarray(0, 8)], PNG_SIGNATURE, `${file} is not a PNG`);
  const meta = await sharp(bytes).metadata();
  assert.equal(meta.format, 'png');
  assert.ok((meta.width ?? 0) > 100 && (meta.height ?? 0) > 50, `${file}: ${meta.width}x${meta.height}`);
  return { width: meta.width ?? 0, height: meta.height ?? 0 };
}

describe('tiny masked-MNIST campaign through the CLI', () => {
  let dir: string;
  let store: string;
  let history: LapJson[];
  let stdout: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'diffem-mnist-'));
    store = path.join(dir, 'store');
    const result = await runCli(['run', 'examples/mnist-masked-tiny.yaml', '--store', store, '--id', 'tiny']);
    assert.equal(result.code, 0, result.stderr);
    stdout = result.stdout;
    history = await historyOf(store, 'tiny');
  });

  test('history --json has psnr, ssim and fid in every lap', () => {
    assert.deepEqual(
      history.map((h) => h.lap),
      [0, 1],
    );
    for (const lap of history) {
      for (const key of ['psnr', 'ssim', 'fid']) {
        assert.equal(typeof lap.metrics[key], 'number', `lap ${lap.lap} metric ${key}`);
        assert.ok(Number.isFinite(lap.metrics[key]), `lap ${lap.lap} ${key} = ${lap.metrics[key]}`);
      }
      assert.ok(lap.metrics.psnr > 8 && lap.metrics.psnr < 40, `lap ${lap.lap} psnr ${lap.metrics.psnr}`);
      assert.ok(lap.metrics.ssim > 0 && lap.metrics.ssim <= 1);
      assert.ok(lap.metrics.fid >= 0);
    }
  });

  test('the PSNR of the reconstructions rises from lap 0 to the last lap', () => {
    const first = history[0].metrics.psnr;
    const last = history[history.length - 1].metrics.psnr;
    assert.ok(last > first, `lap 0 ${first} dB, last lap ${last} dB`);
  });

  test('each lap, the final E-step and the prior have a PNG grid, recorded with its digest', async () => {
    const figures = path.join(store, 'campaigns/tiny/figures');
    for (const name of ['lap-000.png', 'lap-001.png', 'final.png', 'reconstructions.png', 'prior-samples.png']) {
      await assertPng(path.join(figures, name));
    }
    // Three panels side by side: observations | reconstructions | ground truth.
    const lap = await assertPng(path.join(figures, 'lap-001.png'));
    assert.ok(lap.width > 2.5 * lap.height, `lap grid ${lap.width}x${lap.height}`);
    assert.ok(history[1].artifacts.some((a) => a.key.endsWith('figures/lap-001.png')));
    assert.match(stdout, /figure: campaigns\/tiny\/figures\/prior-samples\.png/);
  });

  test('the observed subset, the operators and the classifier are stored once, with the digest in the record', async () => {
    const summary = JSON.parse(await readFile(path.join(store, 'campaigns/tiny/summary.json'), 'utf8')) as {
      datasetDigest: string;
      priorMetrics: Record<string, number>;
    };
    assert.match(summary.datasetDigest, /^[0-9a-f]{64}$/);
    assert.equal(typeof summary.priorMetrics.fid, 'number');
    const truth = JSON.parse(await readFile(path.join(store, 'campaigns/tiny/data/truth.json'), 'utf8')) as {
      fid: { features: string; trainImages: number };
    };
    assert.equal(truth.fid.features, 'mnist-classifier');
    // The classifier trained on the train images outside the 256 observations.
    assert.equal(truth.fid.trainImages, 60000 - 256);
  });
});

/** A CIFAR-10 binary dataset of `train` + `test` random images with labels, in the official layout. */
async function writeSmallCifar(root: string, train: number, test: number): Promise<void> {
  const folder = path.join(root, CIFAR10_DIR);
  await mkdir(folder, { recursive: true });
  const rng = Rng.derive(5, 'cifar-fixture');
  const batch = (n: number) => {
    // Smooth random images (a few blobs), so the Gaussian and the U-Net have structure to find.
    const images = ndarray([n, 32, 32, 3]);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % 10;
      const cx = 8 + 16 * rng.uniform();
      const cy = 8 + 16 * rng.uniform();
      const colour = [rng.uniform(), rng.uniform(), rng.uniform()].map((v) => 4 * v - 2);
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const w = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (4 + labels[i]) ** 2));
          for (let c = 0; c < 3; c++) images.data[((i * 32 + y) * 32 + x) * 3 + c] = -1.5 + w * (colour[c] + 1.5);
        }
      }
    }
    return encodeCifar10({ images, labels });
  };
  const per = Math.ceil(train / CIFAR10_TRAIN_FILES.length);
  for (const f of CIFAR10_TRAIN_FILES) await writeFile(path.join(folder, f), batch(per));
  for (const f of CIFAR10_TEST_FILES) await writeFile(path.join(folder, f), batch(test));
}

describe('the CIFAR-10 config, shrunk', () => {
  test('runs end to end on a small CIFAR-format dataset', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'diffem-cifar-'));
    await writeSmallCifar(path.join(dir, 'cifar'), 80, 24);
    const doc = await example('cifar10-masked75.yaml');
    // The paper's settings stay (75 % masked, Beta(3, 3), sigma in [1e-3, 1e2]); the sizes shrink.
    assert.deepEqual(doc.channel, { kind: 'pixel-mask', rate: 0.75, noiseStd: 0.001 });
    assert.deepEqual((doc.model as { levels: number[] }).levels, [128, 256, 384]);
    assert.equal((doc.estep as { steps: number }).steps, 256);
    doc.data = { kind: 'cifar10', path: path.join(dir, 'cifar'), count: 48, heldout: 24 };
    doc.model = {
      kind: 'unet',
      levels: [8, 16, 16],
      blocksPerLevel: 1,
      attentionLevels: [2],
      embedDim: 16,
      dropout: 0.1,
      groups: 4,
    };
    doc.em = { laps: 1, gaussianIterations: 2, gaussianRank: 4, shardSize: 32, concurrency: 1 };
    doc.estep = { steps: 4 };
    doc.training = {
      ...(doc.training as object),
      steps: 4,
      firstSteps: 4,
      batchSize: 4,
      checkpointEvery: 2,
      emaDecay: 0.9,
    };
    doc.prior = { steps: 4, samples: 8, samplerSteps: 2 };
    doc.metrics = { samples: 24, fid: { features: 'mnist-classifier', classifierSteps: 5 } };
    doc.runtime = { device: 'cpu', threads: 1, batchSize: 16 };
    const file = path.join(dir, 'cifar-small.yaml');
    await writeFile(file, stringify(doc));
    const store = path.join(dir, 'store');
    const result = await runCli(['run', file, '--store', store, '--id', 'cifar']);
    assert.equal(result.code, 0, result.stderr);
    const history = await historyOf(store, 'cifar');
    assert.deepEqual(
      history.map((h) => h.lap),
      [0, 1],
    );
    for (const lap of history)
      for (const key of ['psnr', 'ssim', 'fid']) assert.ok(Number.isFinite(lap.metrics[key]), `lap ${lap.lap} ${key}`);
    await assertPng(path.join(store, 'campaigns/cifar/figures/reconstructions.png'));
  });
});

describe('bad inputs', () => {
  test('a missing dataset path fails with an error naming it, and a non-zero exit', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'diffem-badpath-'));
    const doc = await example('cifar10-masked75.yaml');
    const missing = path.join(dir, 'no-such-cifar');
    doc.data = { kind: 'cifar10', path: missing, count: 10, heldout: 5 };
    doc.metrics = { fid: { features: 'none' } };
    doc.runtime = { device: 'cpu', threads: 1 };
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, stringify(doc));
    const result = await runCli(['run', file, '--store', path.join(dir, 'store'), '--id', 'bad']);
    assert.notEqual(result.code, 0);
    assert.ok(result.stderr.includes(missing), result.stderr);
    assert.match(result.stderr, /data\.path/);
    assert.match(result.stderr, /no such directory/);
  });

  test('the image examples parse, with their paper settings', async () => {
    for (const name of ['mnist-masked.yaml', 'mnist-masked-tiny.yaml', 'cifar10-masked75.yaml']) {
      const config = parseCampaignConfig(await example(name), name);
      assert.equal(config.model.kind, 'unet');
      assert.equal(config.training.timeDistribution, 'beta33');
      assert.deepEqual([config.schedule.sigmaMin, config.schedule.sigmaMax], [1e-3, 1e2]);
    }
  });

  test('cross-field checks name the field to change', async () => {
    const base = await example('mnist-masked-tiny.yaml');
    const issues = (doc: Record<string, unknown>): string[] => {
      try {
        parseCampaignConfig(doc, 'x.yaml');
      } catch (e) {
        assert.ok(e instanceof ConfigError);
        return e.issues;
      }
      assert.fail('expected a ConfigError');
    };
    assert.ok(issues({ ...base, channel: { kind: 'projection' } }).some((i) => i.startsWith('channel.kind:')));
    assert.ok(issues({ ...base, model: { hidden: [8] } }).some((i) => i.startsWith('model.kind:')));
    assert.ok(
      issues({ ...base, model: { kind: 'unet', levels: [12, 16], groups: 8 } }).some((i) =>
        i.startsWith('model.levels.0:'),
      ),
    );
    assert.ok(
      issues({ ...base, metrics: { fid: { features: 'inception' } } }).some((i) =>
        i.startsWith('metrics.fid.inceptionOnnx:'),
      ),
    );
    assert.ok(
      issues({ ...base, data: { kind: 'folder', path: '/x', height: 16, width: 16, channels: 1 } }).some((i) =>
        i.startsWith('metrics.fid.features:'),
      ),
    );
    assert.ok(
      issues({ ...base, channel: { kind: 'blur', kernelSize: 4 } }).some((i) => i.startsWith('channel.kernelSize:')),
    );
    const manifold = parse(await readFile(path.join(REPO, 'examples/manifold-tiny.yaml'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.ok(issues({ ...manifold, channel: { kind: 'pixel-mask' } }).some((i) => i.startsWith('channel.kind:')));
    // The manifold examples still parse, their model defaulting to the MLP.
    assert.equal(parseCampaignConfig(manifold).model.kind, 'mlp');
  });
});
