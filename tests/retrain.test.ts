/**
 * Retraining through the real CLI: a schedule over a growing S3 prefix of observation files
 * (s3rver) trains its first campaign from the Gaussian lap 0, records "no new data" without
 * training when nothing arrived, and warm-starts the next campaign from the last one when a
 * file arrives; the chain is recorded and shown. A warm-started campaign is compared with a
 * fresh one on the same grown data and budget (figures reported, not asserted: noise).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { domainOf } from '../activities/index.js';
import { readScheduleRuns } from '../engines/lineage.js';
import { listCampaignIds, listSteps, readLapRecords, readSummary } from '../engines/records.js';
import { encodeSafetensors } from '../models/safetensors.js';
import { ndarray } from '../models/ndarray.js';
import { openStore } from '../store/open.js';
import { getJson } from '../store/store.js';
import { parseCampaignConfig } from '../workflows/config.js';
import { campaignKeys } from '../workflows/keys.js';
import { runCli } from './helpers/cli.js';
import { startS3, type S3Fixture } from './helpers/s3.js';

const PER_FILE = 128;
const SOURCE = 's3://inbox/team/observations';

let dir = '';
let s3: S3Fixture;

function document(source: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    seed: 11,
    data: { kind: 'manifold', dim: 5, source },
    channel: { kind: 'projection', obsDim: 2, noiseStd: 0.01 },
    model: { hidden: [16, 16], embedDim: 8 },
    em: { laps: 2, gaussianIterations: 4, shardSize: PER_FILE, concurrency: 2 },
    estep: { steps: 6 },
    training: { steps: 30, batchSize: 64, lr: 0.002, checkpointEvery: 30, emaDecay: 0.99 },
    prior: { steps: 20, samples: 128, samplerSteps: 6 },
    metrics: { samples: 128 },
    ...extra,
  };
}

async function writeConfig(name: string, doc: Record<string, unknown>): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, toYaml(doc));
  return path;
}

async function dropFile(part: string): Promise<void> {
  const simulate = domainOf(parseCampaignConfig(document(SOURCE))).simulateObservations;
  assert.ok(simulate, 'the retraining config is a vector campaign');
  const { y, A } = simulate(part, PER_FILE);
  const source = openStore(SOURCE, { env: s3.env, credentials: s3.credentials });
  await source.put(`${part}.safetensors`, encodeSafetensors({ y, A }));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'diffem-retrain-'));
  s3 = await startS3({ bucket: 'inbox' });
});

after(async () => {
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a schedule trains, records "no new data" without training, then warm-starts from its last campaign on grown data', async (t) => {
  const store = join(dir, 'store');
  const config = await writeConfig('nightly.yaml', document(SOURCE));
  const tick = (extra: string[] = []) =>
    runCli(['retrain', config, '--store', store, '--schedule', 'nightly', ...extra], s3.env);
  await dropFile('day-1');

  const first = await tick();
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /trained nightly-0001 on 1 files/);
  assert.match(first.stderr, /from the Gaussian lap 0/);

  const quiet = await tick();
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.match(
    quiet.stdout,
    /no new data in s3:\/\/inbox\/team\/observations since nightly-0001 \(1 files, snapshot [0-9a-f]{12}\); nothing trained/,
  );
  const fs = openStore(store);
  assert.deepEqual(await listCampaignIds(fs), ['nightly-0001'], 'no campaign was started');
  const runs = await readScheduleRuns(fs, 'nightly');
  assert.deepEqual(
    runs.map((r) => [r.outcome, r.campaignId, r.snapshot.files]),
    [
      ['trained', 'nightly-0001', 1],
      ['no new data', 'nightly-0001', 1],
    ],
  );

  await dropFile('day-2');
  const warm = await tick(['--warm-laps', '1']);
  assert.equal(warm.code, 0, warm.stderr);
  assert.match(warm.stdout, /trained nightly-0002 from nightly-0001 on 2 files/);
  const summary = await readSummary(fs, 'nightly-0002');
  assert.equal(summary?.parent, 'nightly-0001');
  assert.equal(summary?.laps, 1);
  const snapshot = await getJson<{ files: Array<{ name: string }> }>(fs, campaignKeys.snapshot('nightly-0002'));
  assert.deepEqual(
    snapshot.files.map((f) => f.name),
    ['day-1.safetensors', 'day-2.safetensors'],
  );
  // Lap 0 sampled with the parent's model instead of the Gaussian, on all the data.
  const steps = (await listSteps(fs, 'nightly-0002')).map((s) => s.step).sort();
  assert.ok(steps.includes('lap-000/estep/shard-001') && !steps.includes('lap-000/gaussian'), steps.join(' '));
  const [lap0] = await readLapRecords(fs, 'nightly-0002');
  assert.ok(lap0.artifacts.some((a) => a.key === campaignKeys.posteriorShard('nightly-0002', 0, 1)));

  const history = await runCli(['history', 'nightly-0002', '--store', store]);
  assert.match(history.stdout, /nightly-0001 {2}parent - {2}data 1 files [0-9a-f]{12} {2}2 laps sinkhorn=/);
  assert.match(history.stdout, /nightly-0002 {2}parent nightly-0001 {2}data 2 files [0-9a-f]{12} {2}1 laps sinkhorn=/);

  const report = await runCli(['report', 'nightly-0002', '--store', store, '--out', join(dir, 'report.html')]);
  assert.equal(report.code, 0, report.stderr);
  const html = await readFile(join(dir, 'report.html'), 'utf8');
  assert.match(html, /Retraining chain of <code>nightly-0002<\/code>/);
  assert.match(html, /<td><code>nightly-0002<\/code><\/td><td><code>nightly-0001<\/code><\/td><td>2 files, /);

  // A fresh campaign with the same budget on the same grown data, for the figures.
  const fresh = await writeConfig(
    'fresh.yaml',
    document(SOURCE, { em: { laps: 1, gaussianIterations: 4, shardSize: PER_FILE, concurrency: 2 } }),
  );
  const run = await runCli(['run', fresh, '--store', store, '--id', 'fresh'], s3.env);
  assert.equal(run.code, 0, run.stderr);
  const freshSummary = await readSummary(fs, 'fresh');
  assert.equal(freshSummary?.datasetDigest, summary?.datasetDigest, 'the same data');
  const warmSinkhorn = summary?.lastMetrics.sinkhorn ?? Number.NaN;
  const freshSinkhorn = freshSummary?.lastMetrics.sinkhorn ?? Number.NaN;
  assert.ok(Number.isFinite(warmSinkhorn) && Number.isFinite(freshSinkhorn));
  t.diagnostic(
    `final reconstructions' Sinkhorn divergence, one lap on 2 files: warm ${warmSinkhorn}, fresh ${freshSinkhorn}`,
  );
});

test('retraining refuses a bad source file, an unknown parent and a warm start under EM-MMPS, by name', async () => {
  const inbox = join(dir, 'bad-inbox');
  const store = join(dir, 'bad-store');
  await rm(inbox, { recursive: true, force: true });
  const { mkdir } = await import('node:fs/promises');
  await mkdir(inbox, { recursive: true });
  await writeFile(join(inbox, 'broken.safetensors'), encodeSafetensors({ y: ndarray([4, 3]), A: ndarray([4, 3, 5]) }));
  const config = await writeConfig('bad.yaml', document(inbox));
  const bad = await runCli(['retrain', config, '--store', store, '--schedule', 'nightly']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /bad-inbox\/broken\.safetensors: tensor 'y' has shape \[4, 3\], expected \[n, 2\]/);
  assert.deepEqual(await readScheduleRuns(openStore(store), 'nightly'), [], 'a failed tick is not recorded as trained');

  const empty = join(dir, 'empty-inbox');
  await mkdir(empty, { recursive: true });
  const none = await runCli([
    'run',
    await writeConfig('empty.yaml', document(empty)),
    '--store',
    store,
    '--id',
    'empty',
  ]);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /empty-inbox: holds no \.safetensors observation files/);

  const orphan = await runCli([
    'run',
    await writeConfig('orphan.yaml', document(inbox, { init: { from: 'nobody' } })),
    '--store',
    store,
    '--id',
    'orphan',
  ]);
  assert.notEqual(orphan.code, 0);
  assert.match(orphan.stderr, /init\.from: no campaign 'nobody'/);

  const mmps = await runCli([
    'run',
    await writeConfig('mmps.yaml', document(inbox, { method: 'emmps', init: { from: 'x' } })),
    '--store',
    store,
  ]);
  assert.notEqual(mmps.code, 0);
  assert.match(mmps.stderr, /init\.from: a warm start continues DiffEM's conditional model/);
  assert.ok((await readFile(config, 'utf8')).includes('bad-inbox'));
});
