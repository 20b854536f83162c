/**
 * Credentials stay out of everything diffem prints or writes. A real campaign runs on S3 (an
 * s3rver endpoint that knows one extra, recognisable key pair) with Temporal secrets in the
 * environment as well; then every byte it stored, every line the CLI printed (run, status,
 * history, report) and the report file are searched for each secret. Credentials put in a
 * store URI are refused without being repeated, and failures that quote a secret are
 * scrubbed before they reach the status record, the journal or the terminal.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { runCli, type CliResult } from './helpers/cli.js';
import { startS3, type S3Fixture } from './helpers/s3.js';
import { FsArtifactStore } from '../store/fs.js';
import { writeStatus, writeStep } from '../engines/records.js';
import { redactSecrets } from '../store/secrets.js';

const ACCESS_KEY_ID = 'AKIAFAKEDIFFEMTEST42';
const SECRET_ACCESS_KEY = 'fake+Secret/Access/Key/Diffem0123456789xyz';
const TEMPORAL_API_KEY = 'tmprl-fake-api-key-5f3c1e0b9a7d';
const TLS_KEY_PATH = '/run/secrets/diffem-temporal-client-fake.key';
const SECRETS = [ACCESS_KEY_ID, SECRET_ACCESS_KEY, TEMPORAL_API_KEY, TLS_KEY_PATH];

let s3: S3Fixture;
let dir: string;
let env: Record<string, string>;

before(async () => {
  s3 = await startS3({
    bucket: 'campaigns',
    keyPairs: [{ accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }],
  });
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-secrets-'));
  env = {
    ...s3.env,
    AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
    TEMPORAL_API_KEY,
    TEMPORAL_TLS_CLIENT_KEY_PATH: TLS_KEY_PATH,
  };
});
after(async () => {
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

function assertNoSecret(where: string, text: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${where} holds the secret ${secret.slice(0, 8)}…`);
}

/** Every file under `root`, as text. */
async function allFiles(root: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out.push([file, (await readFile(file)).toString('latin1')]);
  }
  return out;
}

test('a campaign on S3 with known credentials leaves them in no output, record, report or object', async () => {
  const uri = 's3://campaigns/team/diffem';
  const printed: Array<[string, CliResult]> = [];
  const cli = async (args: string[], expectOk = true) => {
    const result = await runCli(args, env);
    if (expectOk) assert.equal(result.code, 0, result.stderr);
    printed.push([args.join(' '), result]);
    return result;
  };
  await cli(['run', 'examples/manifold-tiny.yaml', '--store', uri, '--id', 'tiny']);
  await cli(['status', 'tiny', '--store', uri]);
  await cli(['status', 'tiny', '--store', uri, '--json']);
  await cli(['history', 'tiny', '--store', uri]);
  await cli(['history', 'tiny', '--store', uri, '--json']);
  const reportFile = path.join(dir, 'report.html');
  await cli(['report', 'tiny', '--store', uri, '--out', reportFile]);
  // Failures print more than successes: an unknown key id that contains the real one, an unknown campaign.
  const denied = await runCli(['status', 'tiny', '--store', uri], { ...env, AWS_ACCESS_KEY_ID: `${ACCESS_KEY_ID}X` });
  assert.notEqual(denied.code, 0);
  printed.push(['status with an unknown key id', denied]);
  await cli(['history', 'nope', '--store', uri], false);

  for (const [args, result] of printed) {
    assertNoSecret(`stdout of ${args}`, result.stdout);
    assertNoSecret(`stderr of ${args}`, result.stderr);
  }
  assertNoSecret('the report file', await readFile(reportFile, 'utf8'));
  const stored = await allFiles(s3.directory);
  assert.ok(stored.length > 40, `the campaign's objects are on the S3 server (${stored.length} files)`);
  for (const [file, text] of stored) assertNoSecret(file, text);
});

test('credentials in a store URI are refused without being repeated, and nothing is stored', async () => {
  const before = (await allFiles(s3.directory)).length;
  for (const uri of [
    `s3://${ACCESS_KEY_ID}:${encodeURIComponent(SECRET_ACCESS_KEY)}@campaigns/other`,
    `s3://${ACCESS_KEY_ID}:${SECRET_ACCESS_KEY}@campaigns`,
  ]) {
    for (const command of [
      ['run', 'examples/manifold-tiny.yaml', '--store', uri, '--id', 'leak'],
      ['status', 'leak', '--store', uri],
      ['report', 'leak', '--store', uri],
    ]) {
      const result = await runCli(command, { ...s3.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /holds credentials/);
      assert.ok(!result.stderr.includes(ACCESS_KEY_ID) && !result.stderr.includes(SECRET_ACCESS_KEY), result.stderr);
      assert.ok(!result.stderr.includes(encodeURIComponent(SECRET_ACCESS_KEY)), result.stderr);
    }
  }
  assert.equal((await allFiles(s3.directory)).length, before);
});

test('a failure quoting a secret is scrubbed before it reaches the status record or the journal', async () => {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const store = new FsArtifactStore(path.join(dir, 'scrub'));
    const message = `connect to https://user:${SECRET_ACCESS_KEY}@host failed for ${ACCESS_KEY_ID} with ${TEMPORAL_API_KEY} (${TLS_KEY_PATH})`;
    await writeStatus(store, 'c', { status: 'failed', error: message });
    await writeStep(store, 'c', {
      step: 'lap-000/data',
      activity: 'prepareData',
      inputDigest: 'x',
      status: 'failed',
      executions: [{ attempt: 1, startedAt: 'then', outcome: 'failed', error: message }],
    });
    for (const [file, text] of await allFiles(store.root)) {
      assertNoSecret(file, text);
      assert.match(text, /\[redacted\]/);
    }
    assert.equal(redactSecrets('s3://AK:SK@bucket/x'), 's3://[redacted]@bucket/x');
  } finally {
    for (const name of Object.keys(env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  }
});
