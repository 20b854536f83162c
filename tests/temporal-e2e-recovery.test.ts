/**
 * A campaign outlives its Temporal server and its history limit: each test here runs the tiny
 * campaign on a dev server of its own (the pinned CLI), through `diffem` child processes,
 * and compares every artifact with the embedded engine's run of the same config.
 *
 * - Server lost: SIGKILL the server mid-campaign, start it again on the same SQLite file; the
 *   workers reconnect and the campaign completes.
 * - Continue-as-new: the dynamic config `limit.historyCount.suggestContinueAsNew` makes the
 *   server suggest it after a few dozen events, so the campaign crosses several runs.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { REPO } from './helpers/cli.js';
import { artifactDigests, campaignStatus, embeddedReference } from './helpers/campaign-cli.js';
import { recordHistory } from './helpers/recorded-histories.js';
import { DevServer, diffem, serverSkipReason, sleep, waitFor, WorkerProcess } from './helpers/temporal-server.js';
import type { CampaignProgressView } from '../workflows/temporal.js';

const TINY = path.join(REPO, 'examples', 'manifold-tiny.yaml');
const skip = serverSkipReason();
/** Each test has a server of its own, so every campaign is `tiny`, like the embedded reference. */
const ID = 'tiny';

let dir: string;
let bundle: string;
let reference: Map<string, string>;

before(async () => {
  if (skip) return;
  ({ dir, bundle, reference } = await embeddedReference('diffem-e2e-recovery-', TINY, ID));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A server of its own with one worker per queue, torn down after `body`. */
async function withServer(
  name: string,
  dynamicConfig: string[],
  body: (server: DevServer, client: Client, store: string) => Promise<void>,
): Promise<void> {
  const server = await DevServer.start({ dbFile: path.join(dir, `${name}.sqlite`), dynamicConfig });
  const workers = [
    WorkerProcess.start('diffem-cpu', server.address, bundle),
    WorkerProcess.start('diffem-gpu', server.address, bundle),
  ];
  const connection = await Connection.connect({ address: server.address });
  try {
    await body(server, new Client({ connection }), path.join(dir, `${name}-store`));
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await connection.close();
    await server.stop();
  }
}

describe('campaigns that outlive their server and their history', { skip }, () => {
  test('server lost: SIGKILL mid-campaign, restart on the same database, the campaign completes', async () => {
    await withServer('server-lost', [], async (server, client, store) => {
      const id = ID;
      await diffem(server.address, [
        'run',
        TINY,
        '--engine',
        'temporal',
        '--store',
        store,
        '--id',
        id,
        '--heartbeat-timeout',
        '10s',
      ]);
      // Mid-campaign: the first training has checkpointed, so activities are in flight.
      const checkpoint = path.join(store, 'campaigns', id, 'lap-000', 'train', 'checkpoint.safetensors');
      await waitFor('the first training checkpoint', async () => (existsSync(checkpoint) ? true : undefined));
      await server.kill();
      await sleep(2000);
      await server.restart();
      // The workflow is still there after the restart, and finishes.
      await client.workflow.getHandle(`diffem-${id}`).result();
      const status = await campaignStatus(store, id);
      assert.equal(status.status, 'done');
      assert.deepEqual(await artifactDigests(store, id), reference);
    });
  });

  test('continue-as-new suggested by the server: the campaign crosses runs with the same artifacts', async () => {
    await withServer(
      'continue-as-new',
      ['limit.historyCount.suggestContinueAsNew=30'],
      async (server, client, store) => {
        const id = ID;
        const workflowId = `diffem-${id}`;
        await diffem(server.address, ['run', TINY, '--engine', 'temporal', '--store', store, '--id', id]);
        const handle = client.workflow.getHandle(workflowId);
        const firstRunId = (await handle.describe()).runId;
        await handle.result();
        const progress = JSON.parse(await diffem(server.address, ['progress', id, '--json'])) as CampaignProgressView;
        assert.equal(progress.phase, 'done');
        assert.ok(progress.run >= 2, `the campaign ran in ${progress.run} run(s): continue-as-new was not suggested`);
        const first = await client.workflow.getHandle(workflowId, firstRunId).describe();
        assert.equal(first.status.name, 'CONTINUED_AS_NEW');
        assert.equal((await campaignStatus(store, id)).status, 'done');
        assert.deepEqual(await artifactDigests(store, id), reference);
        await recordHistory(
          client,
          'continue-as-new-first-run',
          workflowId,
          'first run, ended by continue-as-new',
          firstRunId,
        );
        await recordHistory(client, 'continue-as-new-last-run', workflowId, 'last run, resumed from CampaignState');
      },
    );
  });
});
