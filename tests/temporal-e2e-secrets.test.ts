/**
 * The Temporal side of keeping credentials out of everything diffem writes: a campaign on S3 (a
 * real s3rver that knows one recognisable fake key pair) runs on a real dev server through
 * `diffem run --engine temporal` and a `diffem worker` that both hold the key pair; then every
 * run's workflow history (payloads decoded, so the store URI and config are readable text), the
 * worker's and the CLI's output, and every stored object are searched for the secrets. Store
 * URIs that carry credentials are refused by `run` and `schedule create` without repeating
 * them, before anything reaches the server.
 *
 * Run by `npm run temporal:test`; skipped without a server, failed under DIFFEM_REQUIRE_TEMPORAL=1.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';

import { REPO, runCli, type CliResult } from './helpers/cli.js';
import { startS3, type S3Fixture } from './helpers/s3.js';
import { DevServer, serverSkipReason, WorkerProcess } from './helpers/temporal-server.js';

const TINY = path.join(REPO, 'examples', 'manifold-tiny.yaml');
const skip = serverSkipReason();
const ID = 'tiny';
const BUCKET = 'campaigns';
const STORE = `s3://${BUCKET}/team/diffem`;

const ACCESS_KEY_ID = 'AKIAFAKEDIFFEMHISTORY7';
const SECRET_ACCESS_KEY = 'fake/History+Secret/Key/Diffem9876543210abc';
const SECRETS = [ACCESS_KEY_ID, SECRET_ACCESS_KEY, encodeURIComponent(SECRET_ACCESS_KEY)];

let dir: string;
let bundle: string;
let s3: S3Fixture;
let server: DevServer;
let connection: Connection;
let client: Client;
/** What the worker and the CLI need: the fake key pair, the s3rver endpoint, the server. */
let env: Record<string, string>;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-e2e-secrets-'));
  bundle = path.join(dir, 'workflow-bundle.js');
  const bundled = await runCli(['worker', 'bundle', '--out', bundle]);
  assert.equal(bundled.code, 0, bundled.stderr);
  s3 = await startS3({
    bucket: BUCKET,
    keyPairs: [{ accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }],
  });
  server = await DevServer.start({ dbFile: path.join(dir, 'temporal.sqlite') });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  env = {
    ...s3.env,
    AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_NAMESPACE: 'default',
  };
});

after(async () => {
  await connection?.close();
  await server?.stop();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function assertNoSecret(where: string, text: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${where} holds the secret ${secret.slice(0, 8)}…`);
}

/**
 * A history as searchable text: every string and byte field, walked by hand. Payload data are
 * bytes (JSON inside); the messages' own toJSON (and historyToJSON) would base64 them and hide
 * a secret from the search, so bytes are read as latin1 instead.
 */
function historyText(history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>>): string {
  const parts: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') parts.push(value);
    else if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('latin1'));
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(history);
  return parts.join('\n');
}

/** Every run of every workflow in the namespace, with its history as text. */
async function allHistories(): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for await (const execution of client.workflow.list()) {
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    out.push([`history of ${execution.workflowId} run ${execution.runId}`, historyText(history)]);
  }
  return out;
}

async function storedObjects(): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for (const entry of await readdir(s3.directory, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out.push([file, (await readFile(file)).toString('latin1')]);
  }
  return out;
}

describe('credentials and the Temporal server', { skip }, () => {
  test('a campaign on S3 leaves its credentials out of every history, the worker output and the store', async () => {
    const worker = WorkerProcess.start('all', server.address, bundle, 'default', env);
    const printed: Array<[string, CliResult]> = [];
    const cli = async (args: string[]): Promise<CliResult> => {
      const result = await runCli(args, env);
      assert.equal(result.code, 0, result.stderr);
      printed.push([args.join(' '), result]);
      return result;
    };
    let workerOutput: CliResult;
    try {
      await cli(['run', TINY, '--engine', 'temporal', '--store', STORE, '--id', ID, '--wait']);
      await cli(['progress', ID]);
      await cli(['status', ID, '--store', STORE]);
    } finally {
      workerOutput = await worker.stop();
    }
    assert.equal(JSON.parse((await cli(['status', ID, '--store', STORE, '--json'])).stdout).status, 'done');

    const histories = await allHistories();
    assert.ok(histories.length >= 1, 'the campaign left no workflow history');
    // The search reads the payloads: the store URI and the config are there in clear.
    const all = histories.map(([, text]) => text).join('\n');
    assert.ok(all.includes(STORE), 'the history text does not show the store URI: payloads were not decoded');
    assert.ok(all.includes('trainConditional'), 'the history text does not show the activities');
    for (const [where, text] of histories) assertNoSecret(where, text);

    assert.match(workerOutput.stderr, /worker for queue all/, 'the worker output was not captured');
    assertNoSecret('worker stdout', workerOutput.stdout);
    assertNoSecret('worker stderr', workerOutput.stderr);
    for (const [args, result] of printed) {
      assertNoSecret(`stdout of diffem ${args}`, result.stdout);
      assertNoSecret(`stderr of diffem ${args}`, result.stderr);
    }
    const stored = await storedObjects();
    assert.ok(stored.length > 40, `the campaign's objects are on the S3 server (${stored.length} files)`);
    for (const [file, text] of stored) assertNoSecret(file, text);
  });

  test('a store URI holding credentials is refused by run and schedule create before the server sees it', async () => {
    const uri = `s3://${ACCESS_KEY_ID}:${encodeURIComponent(SECRET_ACCESS_KEY)}@${BUCKET}/leak`;
    const before = (await allHistories()).length;
    for (const args of [
      ['run', TINY, '--engine', 'temporal', '--store', uri, '--id', 'leak'],
      ['schedule', 'create', 'leak', TINY, '--store', uri, '--cron', '0 3 * * *'],
    ]) {
      const result = await runCli(args, env);
      assertNoSecret(`stderr of diffem ${args.slice(0, 2).join(' ')}`, result.stderr);
      assertNoSecret(`stdout of diffem ${args.slice(0, 2).join(' ')}`, result.stdout);
      assert.notEqual(result.code, 0, `diffem ${args[0]} accepted a store URI with credentials`);
      assert.match(result.stderr, /holds credentials/);
    }
    await assert.rejects(client.workflow.getHandle('diffem-leak').describe(), WorkflowNotFoundError);
    const schedules: string[] = [];
    for await (const schedule of client.schedule.list()) schedules.push(schedule.scheduleId);
    assert.deepEqual(schedules, []);
    const histories = await allHistories();
    assert.equal(histories.length, before, 'a workflow was started with the refused URI');
    for (const [where, text] of histories) assertNoSecret(where, text);
  });
});
