/**
 * Using and auditing a finished campaign through the real CLI, on the filesystem and on a
 * real S3 endpoint (s3rver): list, verify (a flipped byte, a truncated file and a deleted
 * file, each caught by key), sample and reconstruct (the campaign's own prior samples and
 * final E-step reproduced bit for bit from the same seed and stream), export (the model
 * card's digests are the files'), and bad input refused with nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { runLocalCampaign } from '../engines/local/engine.js';
import { decodeSafetensors, encodeSafetensors } from '../models/safetensors.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { openStore } from '../store/open.js';
import { sha256Hex, type ArtifactStore } from '../store/store.js';
import { parseCampaignConfig, type CampaignConfig } from '../workflows/config.js';
import { campaignKeys } from '../workflows/keys.js';
import { runCli } from './helpers/cli.js';
import { startS3, type S3Fixture } from './helpers/s3.js';

const COUNT = 256;
const LAPS = 2;
const PRIOR_SAMPLES = 128;

async function tinyConfig(): Promise<CampaignConfig> {
  const document = parseYaml(
    await readFile(new URL('../../examples/manifold-tiny.yaml', import.meta.url), 'utf8'),
  ) as Record<string, Record<string, unknown>>;
  document.data = { ...document.data, count: COUNT };
  document.model = { ...document.model, hidden: [16, 16], embedDim: 8 };
  document.em = { ...document.em, laps: LAPS, gaussianIterations: 4, shardSize: COUNT / 2 };
  document.estep = { steps: 6 };
  document.training = { ...document.training, steps: 20, batchSize: 64, checkpointEvery: 20 };
  document.prior = { steps: 20, samples: PRIOR_SAMPLES, samplerSteps: 6 };
  document.metrics = { samples: 128 };
  return parseCampaignConfig(document, 'after-campaign test');
}

let dir = '';
let fsUri = '';
let s3: S3Fixture;
const S3_URI = 's3://after/team';

function s3Store(uri: string): ArtifactStore {
  return openStore(uri, { env: s3.env, credentials: s3.credentials });
}

async function copyStore(from: ArtifactStore, to: ArtifactStore, prefix = ''): Promise<void> {
  for (const key of await from.list(prefix)) await to.put(key, await from.get(key));
}

function tensor(bytes: Uint8Array, name: string): NDArray {
  const t = decodeSafetensors(bytes).tensors[name];
  assert.ok(t, `tensor ${name}`);
  return t;
}

function sameBytes(a: NDArray, b: NDArray): boolean {
  return (
    a.data.length === b.data.length &&
    Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(
      Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
    )
  );
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'diffem-after-'));
  fsUri = join(dir, 'store');
  await runLocalCampaign({ store: fsUri, campaignId: 'tiny', config: await tinyConfig() });
  s3 = await startS3({ bucket: 'after' });
  await copyStore(openStore(fsUri), s3Store(S3_URI));
});

after(async () => {
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('list shows the campaign on the filesystem and on S3', async () => {
  for (const [uri, env] of [
    [fsUri, {}],
    [S3_URI, s3.env],
  ] as const) {
    const text = await runCli(['list', '--store', uri], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^tiny\s+diffem\s+manifold\s+done\s+2\/2\s+sinkhorn=\S+\s+\d{4}-/m);
    const json = await runCli(['list', '--store', uri, '--json'], env);
    const [listing] = JSON.parse(json.stdout) as Array<{ campaignId: string; lapsDone: number; status: string }>;
    assert.deepEqual([listing.campaignId, listing.lapsDone, listing.status], ['tiny', LAPS, 'done']);
  }
  const empty = await runCli(['list', '--store', join(dir, 'nothing-here')]);
  assert.equal(empty.stdout.trim(), 'no campaigns');
});

interface VerifyJson {
  checked: number;
  ok: number;
  problems: Array<{ key: string; state: string; namedBy: string[] }>;
}

async function tamper(store: ArtifactStore, keys: { flip: string; cut: string; drop: string }): Promise<void> {
  const flipped = await store.get(keys.flip);
  flipped[Math.floor(flipped.length / 2)] ^= 0x01;
  await store.put(keys.flip, flipped);
  const cut = await store.get(keys.cut);
  await store.put(keys.cut, cut.subarray(0, cut.length - 7));
  await store.delete(keys.drop);
}

test('verify passes an intact store and names a flipped byte, a truncated and a deleted file by key (filesystem and S3)', async () => {
  const keys = {
    flip: campaignKeys.network('tiny', { lap: 1 }, 'denoiser.onnx'),
    cut: campaignKeys.posteriorShard('tiny', 2, 1),
    drop: campaignKeys.priorSamples('tiny'),
  };
  const fsCopy = join(dir, 'tampered');
  await copyStore(openStore(fsUri), openStore(fsCopy));
  const s3Copy = 's3://after/tampered';
  await copyStore(s3Store(S3_URI), s3Store(s3Copy));

  for (const [uri, env] of [
    [fsUri, {}],
    [S3_URI, s3.env],
  ] as const) {
    const intact = await runCli(['verify', 'tiny', '--store', uri], env);
    assert.equal(intact.code, 0, intact.stderr);
    assert.match(intact.stdout, /all \d+ recorded artifacts match their sha256/);
  }

  // On the filesystem the files are changed behind the store's back; on S3 through the API.
  const root = join(fsCopy, 'campaigns');
  const flipPath = join(fsCopy, keys.flip);
  const flipped = await readFile(flipPath);
  flipped[Math.floor(flipped.length / 2)] ^= 0x01;
  await writeFile(flipPath, flipped);
  const cutPath = join(fsCopy, keys.cut);
  await truncate(cutPath, (await readFile(cutPath)).length - 7);
  await rm(join(fsCopy, keys.drop));
  assert.ok(existsSync(root));
  await tamper(s3Store(s3Copy), keys);

  for (const [uri, env] of [
    [fsCopy, {}],
    [s3Copy, s3.env],
  ] as const) {
    const text = await runCli(['verify', 'tiny', '--store', uri], env);
    assert.equal(text.code, 1, `verify of ${uri} exits 1`);
    assert.match(text.stdout, new RegExp(`^ALTERED\\s+${keys.flip} `, 'm'));
    assert.match(text.stdout, new RegExp(`^TRUNCATED\\s+${keys.cut} `, 'm'));
    assert.match(text.stdout, new RegExp(`^MISSING\\s+${keys.drop} `, 'm'));
    assert.match(text.stdout, /3 of \d+ recorded artifacts differ/);
    const json = JSON.parse((await runCli(['verify', 'tiny', '--store', uri, '--json'], env)).stdout) as VerifyJson;
    assert.deepEqual(
      json.problems.map((p) => [p.key, p.state]).sort(),
      [
        [keys.cut, 'truncated'],
        [keys.drop, 'missing'],
        [keys.flip, 'altered'],
      ].sort(),
    );
    assert.equal(json.ok, json.checked - 3);
    // The M-step's model is named by its journal step and by its lap's record.
    const flip = json.problems.find((p) => p.key === keys.flip);
    assert.deepEqual(flip?.namedBy.sort(), ['journal:lap-001/train', 'lap:1']);
  }
  const missing = await runCli(['verify', 'nope', '--store', fsUri]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no campaign 'nope'/);
});

test("sample reproduces the campaign's own prior samples from its seed, on S3, and another seed gives others", async () => {
  const out = join(dir, 'prior.safetensors');
  const run = await runCli(
    ['sample', 'tiny', '--store', S3_URI, '--count', String(PRIOR_SAMPLES), '--out', out],
    s3.env,
  );
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`wrote ${out}: ${PRIOR_SAMPLES} samples of shape \\[5\\] \\(seed \\d+\\)`));
  const own = tensor(await readFile(join(fsUri, campaignKeys.priorSamples('tiny'))), 'x');
  const drawn = tensor(await readFile(out), 'x');
  assert.deepEqual(drawn.shape, [PRIOR_SAMPLES, 5]);
  assert.ok(sameBytes(drawn, own), 'the same seed gives the campaign prior samples, bit for bit');

  const other = join(dir, 'prior-other.safetensors');
  assert.equal(
    (await runCli(['sample', 'tiny', '--store', fsUri, '--count', '16', '--seed', '99', '--out', other])).code,
    0,
  );
  const again = join(dir, 'prior-again.safetensors');
  assert.equal(
    (await runCli(['sample', 'tiny', '--store', fsUri, '--count', '16', '--seed', '99', '--out', again])).code,
    0,
  );
  const a = tensor(await readFile(other), 'x');
  assert.ok(sameBytes(a, tensor(await readFile(again), 'x')), 'deterministic for a seed');
  assert.ok(!sameBytes(a, ndarray([16, 5], own.data.slice(0, 80))), 'another seed, other draws');

  for (const [args, message] of [
    [['--count', '0', '--out', join(dir, 'x.safetensors')], /--count must be a positive integer, got '0'/],
    [['--count', '4', '--out', join(dir, 'x.npy')], /--out .*x\.npy: expected a file ending in \.safetensors or \.png/],
    [['--count', '4', '--out', join(dir, 'x.png')], /PNG grids are drawn for image campaigns only/],
  ] as const) {
    const bad = await runCli(['sample', 'tiny', '--store', fsUri, ...args]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, message);
  }
  assert.ok(!existsSync(join(dir, 'x.png')) && !existsSync(join(dir, 'x.safetensors')));
});

test("reconstruct with one sample, a shard of the campaign's data and its final E-step's stream reproduces that E-step", async () => {
  const shard = join(fsUri, campaignKeys.dataShard('tiny', 1));
  const out = join(dir, 'recon.safetensors');
  // The final E-step follows lap LAPS: its stream is estep/lap-(LAPS+1)/shard-1.
  const run = await runCli(
    [
      'reconstruct',
      'tiny',
      '--store',
      S3_URI,
      '--observations',
      shard,
      '--samples',
      '1',
      '--stream',
      `estep/lap-${LAPS + 1}/shard-1`,
      '--out',
      out,
    ],
    s3.env,
  );
  assert.equal(run.code, 0, run.stderr);
  const own = tensor(await readFile(join(fsUri, campaignKeys.posteriorShard('tiny', 'final', 1))), 'x');
  const file = await readFile(out);
  assert.ok(sameBytes(tensor(file, 'samples'), own), 'the final E-step samples, bit for bit');
  assert.ok(sameBytes(tensor(file, 'mean'), own));
  assert.ok(tensor(file, 'std').data.every((v) => v === 0));

  const many = join(dir, 'recon-4.safetensors');
  const four = await runCli([
    'reconstruct',
    'tiny',
    '--store',
    fsUri,
    '--observations',
    shard,
    '--samples',
    '4',
    '--out',
    many,
  ]);
  assert.equal(four.code, 0, four.stderr);
  const bytes = await readFile(many);
  const samples = tensor(bytes, 'samples');
  const mean = tensor(bytes, 'mean');
  const std = tensor(bytes, 'std');
  assert.deepEqual(samples.shape, [4, COUNT / 2, 5]);
  assert.deepEqual(mean.shape, [COUNT / 2, 5]);
  const per = mean.data.length;
  for (const j of [0, 17, per - 1]) {
    const xs = [0, 1, 2, 3].map((k) => samples.data[k * per + j]);
    const m = xs.reduce((a, b) => a + b, 0) / 4;
    assert.ok(Math.abs(mean.data[j] - m) < 1e-5);
    assert.ok(Math.abs(std.data[j] - Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / 4)) < 1e-5);
  }
  assert.ok(
    std.data.some((v) => v > 0),
    'four samples differ',
  );
});

test('reconstruct refuses bad observation files by name and writes nothing', async () => {
  const shardBytes = await readFile(join(fsUri, campaignKeys.dataShard('tiny', 0)));
  const { tensors } = decodeSafetensors(shardBytes);
  const y = tensors.y;
  const A = tensors.A;
  const withNaN = ndarray(y.shape, y.data.slice());
  withNaN.data[3] = Number.NaN;
  const files: Array<[string, Uint8Array, RegExp]> = [
    ['nan.safetensors', encodeSafetensors({ y: withNaN, A }), /nan\.safetensors: tensor 'y' holds NaN or Inf/],
    [
      'shape.safetensors',
      encodeSafetensors({ y, A: ndarray([A.shape[0], 2, 4], A.data.slice(0, A.shape[0] * 8)) }),
      /shape\.safetensors: tensor 'A' has shape \[\d+, 2, 4\], expected \[n, 2, 5\]/,
    ],
    [
      'masks.safetensors',
      encodeSafetensors({ y, masks: ndarray([y.shape[0], 2, 2, 1]) }),
      /masks\.safetensors: no tensor 'A'/,
    ],
    ['text.safetensors', new TextEncoder().encode('not a tensor file'), /text\.safetensors/],
  ];
  for (const [name, bytes, message] of files) {
    const path = join(dir, name);
    await writeFile(path, bytes);
    const out = join(dir, `out-${name}`);
    const run = await runCli(['reconstruct', 'tiny', '--store', fsUri, '--observations', path, '--out', out]);
    assert.notEqual(run.code, 0, name);
    assert.match(run.stderr, message);
    assert.ok(!existsSync(out), `nothing written for ${name}`);
  }
  const absent = await runCli([
    'reconstruct',
    'tiny',
    '--store',
    fsUri,
    '--observations',
    join(dir, 'absent.safetensors'),
    '--out',
    join(dir, 'o.safetensors'),
  ]);
  assert.match(absent.stderr, /--observations .*absent\.safetensors: ENOENT/);
  assert.ok(!(await readdir(dir)).some((f) => f.includes('.part-')), 'no partial files left');
});

test('export writes both models and a model card whose digests are the files and the records', async () => {
  const out = join(dir, 'export');
  const run = await runCli(['export', 'tiny', '--store', S3_URI, '--out', out], s3.env);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual((await readdir(out)).sort(), [
    'conditional.onnx',
    'conditional.safetensors',
    'config.yaml',
    'model-card.json',
    'model-card.md',
    'prior.onnx',
    'prior.safetensors',
  ]);
  const card = JSON.parse(await readFile(join(out, 'model-card.json'), 'utf8')) as {
    config: CampaignConfig;
    datasetDigest: string;
    laps: Array<{ lap: number }>;
    files: Array<{ file: string; from: string; sha256: string }>;
    artifacts: Array<{ key: string; sha256: string }>;
    code: { version: string; gitCommit: string | null };
  };
  assert.deepEqual(card.config, await tinyConfig());
  assert.deepEqual(parseCampaignConfig(parseYaml(await readFile(join(out, 'config.yaml'), 'utf8'))), card.config);
  assert.deepEqual(
    card.laps.map((l) => l.lap),
    [0, 1, 2],
  );
  assert.equal(card.datasetDigest, sha256Hex(await readFile(join(fsUri, campaignKeys.observations('tiny')))));
  assert.equal(
    card.code.version,
    JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).version,
  );
  for (const f of card.files) {
    assert.equal(sha256Hex(await readFile(join(out, f.file))), f.sha256, f.file);
    assert.equal(sha256Hex(await readFile(join(fsUri, f.from))), f.sha256, f.from);
  }
  assert.equal(
    card.files.find((f) => f.file === 'conditional.onnx')?.from,
    campaignKeys.network('tiny', { lap: LAPS }, 'denoiser.onnx'),
  );
  const observations = card.artifacts.find((a) => a.key === campaignKeys.observations('tiny'));
  assert.equal(observations?.sha256, card.datasetDigest);
  const md = await readFile(join(out, 'model-card.md'), 'utf8');
  assert.match(md, new RegExp(`Dataset digest .*${card.datasetDigest}`));
  assert.match(md, /\| final reconstructions \|/);

  const again = await runCli(['export', 'tiny', '--store', fsUri, '--out', out]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /--out .*export: already exists/);
});
