/**
 * End to end: the tiny manifold campaign through the real CLI, its history, its figure, and
 * determinism (same seed, same digests; another seed, other digests).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { REPO, runCli } from './helpers/cli.js';

interface LapJson {
  lap: number;
  metrics: Record<string, number>;
  artifacts: Array<{ key: string; sha256: string; bytes: number }>;
  seconds: number;
  attempts: number;
  failures: number;
}

let dir: string;
let history: LapJson[];

async function historyOf(store: string, id: string): Promise<LapJson[]> {
  const result = await runCli(['history', id, '--store', store, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as LapJson[];
}

/** Every artifact digest of a campaign, by key relative to the campaign. */
function digests(laps: LapJson[], id: string): Map<string, string> {
  return new Map(
    laps.flatMap((l) => l.artifacts.map((a) => [a.key.replace(`campaigns/${id}/`, ''), a.sha256] as [string, string])),
  );
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-e2e-'));
  const result = await runCli(['run', 'examples/manifold-tiny.yaml', '--store', path.join(dir, 'a'), '--id', 'tiny']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /campaign tiny finished: 2 laps/);
  history = await historyOf(path.join(dir, 'a'), 'tiny');
});

test('history --json has one object per lap, lap 0 first, with the documented shape', () => {
  assert.deepEqual(
    history.map((h) => h.lap),
    [0, 1, 2],
  );
  for (const lap of history) {
    for (const key of [
      'sinkhorn',
      'curve_distance_mean',
      'curve_distance_median',
      'curve_distance_p90',
      'consistency',
      'coverage',
    ]) {
      assert.equal(typeof lap.metrics[key], 'number', `lap ${lap.lap} metric ${key}`);
      assert.ok(Number.isFinite(lap.metrics[key]));
    }
    assert.ok(lap.artifacts.length > 0);
    for (const a of lap.artifacts) {
      assert.match(a.sha256, /^[0-9a-f]{64}$/);
      assert.ok(a.bytes > 0);
    }
    assert.ok(lap.seconds > 0);
    assert.equal(lap.failures, 0);
  }
  // Lap 0 is the Gaussian initialisation: exact posterior samples fit the data to ~m/2.
  assert.ok(history[0].metrics.consistency < 2, `lap 0 consistency ${history[0].metrics.consistency}`);
});

test('recorded digests match the stored bytes', async () => {
  const { createHash } = await import('node:crypto');
  for (const lap of history) {
    for (const a of lap.artifacts) {
      const bytes = await readFile(path.join(dir, 'a', a.key));
      assert.equal(bytes.length, a.bytes);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), a.sha256, a.key);
    }
  }
});

test('the campaign writes a PNG figure and a summary', async () => {
  const png = await readFile(path.join(dir, 'a/campaigns/tiny/figures/reconstructions.png'));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok(png.length > 10_000);
  const summary = JSON.parse(await readFile(path.join(dir, 'a/campaigns/tiny/summary.json'), 'utf8')) as {
    laps: number;
  };
  assert.equal(summary.laps, 2);
});

test('the table view and status work', async () => {
  const table = await runCli(['history', 'tiny', '--store', path.join(dir, 'a')]);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /lap\s+sinkhorn/);
  const status = await runCli(['status', 'tiny', '--store', path.join(dir, 'a')]);
  assert.match(status.stdout, /campaign tiny: done/);
  const unknown = await runCli(['history', 'nope', '--store', path.join(dir, 'a')]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no campaign 'nope'/);
});

test('same seed, same digests; another seed, other digests', async () => {
  const again = await runCli(['run', 'examples/manifold-tiny.yaml', '--store', path.join(dir, 'b'), '--id', 'tiny']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(digests(await historyOf(path.join(dir, 'b'), 'tiny'), 'tiny'), digests(history, 'tiny'));

  const reseeded = path.join(dir, 'reseeded.yaml');
  await writeFile(
    reseeded,
    (await readFile(path.join(REPO, 'examples/manifold-tiny.yaml'), 'utf8')).replace('seed: 7', 'seed: 8'),
  );
  const other = await runCli(['run', reseeded, '--store', path.join(dir, 'c'), '--id', 'tiny']);
  assert.equal(other.code, 0, other.stderr);
  const otherDigests = digests(await historyOf(path.join(dir, 'c'), 'tiny'), 'tiny');
  for (const [key, sha] of digests(history, 'tiny')) assert.notEqual(otherDigests.get(key), sha, key);
});

test('re-running a finished campaign reuses every step and changes nothing', async () => {
  const result = await runCli(['run', 'examples/manifold-tiny.yaml', '--store', path.join(dir, 'a'), '--id', 'tiny']);
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, / done in /, 'no step ran again');
  assert.deepEqual(digests(await historyOf(path.join(dir, 'a'), 'tiny'), 'tiny'), digests(history, 'tiny'));
});

test('the same id with a different config is refused', async () => {
  const changed = path.join(dir, 'changed.yaml');
  await writeFile(
    changed,
    (await readFile(path.join(REPO, 'examples/manifold-tiny.yaml'), 'utf8')).replace('steps: 60,', 'steps: 61,'),
  );
  const result = await runCli(['run', changed, '--store', path.join(dir, 'a'), '--id', 'tiny']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /already exists .* with a different config/);
});

test('device cuda without the CUDA builds fails at once, saying what to install, and nothing is marked done', async () => {
  const cuda = path.join(dir, 'cuda.yaml');
  await writeFile(
    cuda,
    (await readFile(path.join(REPO, 'examples/manifold-tiny.yaml'), 'utf8')) + 'runtime: { device: cuda }\n',
  );
  const store = path.join(dir, 'cuda');
  const result = await runCli(['run', cuda, '--store', store, '--id', 'gpu']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /npm i @tensorflow\/tfjs-node-gpu/);
  assert.match(result.stderr, /failed after 1 attempt/, 'a missing device is not retried');
  const step = JSON.parse(await readFile(path.join(store, 'campaigns/gpu/steps/lap-000/train.json'), 'utf8')) as {
    status: string;
  };
  assert.equal(step.status, 'failed');
  const status = await runCli(['status', 'gpu', '--store', store]);
  assert.match(status.stdout, /campaign gpu: failed/);
});
