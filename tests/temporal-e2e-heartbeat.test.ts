/**
 * A worker lost in the middle of a CPU activity that used to have no heartbeat timeout (data
 * preparation) is noticed within the heartbeat timeout, not the start-to-close timeout (1 h):
 * activities with a heartbeat timeout heartbeat while they run (activities/context.ts
 * `keepAlive`). The timeout comes from the campaign config (`runtime.timeouts`), so this also
 * shows that the config's timeouts reach the server.
 *
 * The CPU worker is killed at a deterministic point: DIFFEM_CRASH_WRITING (store/fs.ts) makes
 * it SIGKILL itself half-way through writing the clean held-out set, inside prepareData. A
 * second CPU worker, started at once, must receive the retry within the heartbeat timeout
 * plus the retry policy's first interval (10 s), and the campaign must end with the artifacts
 * of the embedded engine's run.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { runCli, REPO } from './helpers/cli.js';
import { artifactDigests, campaignStatus } from './helpers/campaign-cli.js';
import { DevServer, diffem, serverSkipReason, waitFor, WorkerProcess } from './helpers/temporal-server.js';

const TINY = path.join(REPO, 'examples', 'manifold-tiny.yaml');
const skip = serverSkipReason();
const ID = 'tiny';
const HEARTBEAT_TIMEOUT_S = 10;
/** The retry policy's first interval (workflows/temporal.ts activityOptions). */
const RETRY_INTERVAL_S = 10;

let dir: string;
/** The tiny campaign with prepareData's heartbeat timeout set in its config (runtime.timeouts). */
let config: string;
let bundle: string;
let reference: Map<string, string>;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-e2e-heartbeat-'));
  config = path.join(dir, 'tiny-heartbeat.yaml');
  const tiny = await readFile(TINY, 'utf8');
  await writeFile(config, `${tiny}runtime:\n  timeouts:\n    prepareData: { heartbeat: ${HEARTBEAT_TIMEOUT_S}s }\n`);
  bundle = path.join(dir, 'workflow-bundle.js');
  const bundled = await runCli(['worker', 'bundle', '--out', bundle]);
  assert.equal(bundled.code, 0, bundled.stderr);
  const embedded = await runCli(['run', config, '--store', path.join(dir, 'embedded'), '--id', ID]);
  assert.equal(embedded.code, 0, embedded.stderr);
  reference = await artifactDigests(path.join(dir, 'embedded'), ID);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('heartbeats of the CPU activities', { skip }, () => {
  test('worker lost in prepareData: the retry starts within the heartbeat timeout', async () => {
    const server = await DevServer.start({ dbFile: path.join(dir, 'heartbeat.sqlite') });
    const store = path.join(dir, 'store');
    const crashing = WorkerProcess.start('diffem-cpu', server.address, bundle, 'default', {
      DIFFEM_CRASH_WRITING: 'data/clean.safetensors',
    });
    const gpu = WorkerProcess.start('diffem-gpu', server.address, bundle);
    const workers = [crashing, gpu];
    const connection = await Connection.connect({ address: server.address });
    try {
      const client = new Client({ connection });
      await diffem(server.address, ['run', config, '--engine', 'temporal', '--store', store, '--id', ID]);
      const died = await crashing.exited();
      assert.equal(died.signal, 'SIGKILL', `the worker was to kill itself in prepareData:\n${died.stderr}`);
      const lost = Date.now();
      workers.push(WorkerProcess.start('diffem-cpu', server.address, bundle));
      const handle = client.workflow.getHandle(`diffem-${ID}`);
      // The pending activity's attempt 2 has started: the server gave up on attempt 1 and retried.
      const retried = await waitFor('the retry of prepareData', async () => {
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        const prepare = pending.find((a) => a.activityType?.name === 'prepareData');
        // state 2: PENDING_ACTIVITY_STATE_STARTED (a worker has it), not merely scheduled after a backoff.
        if (prepare && (prepare.attempt ?? 0) >= 2 && prepare.state === 2) return Date.now();
        if (prepare) return undefined;
        // A quick retry can start and finish between two polls: then the history's started
        // event of prepareData (written when it closed) carries the retry's attempt and start time.
        const { events } = await handle.fetchHistory();
        const started = (events ?? []).find(
          (e) =>
            e.activityTaskStartedEventAttributes &&
            (e.activityTaskStartedEventAttributes.attempt ?? 0) >= 2 &&
            (events ?? []).some(
              (s) =>
                s.eventId?.toString() === e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() &&
                s.activityTaskScheduledEventAttributes?.activityType?.name === 'prepareData',
            ),
        );
        const time = started?.eventTime;
        return time ? Number(time.seconds ?? 0) * 1000 + Math.floor((time.nanos ?? 0) / 1e6) : undefined;
      });
      const seconds = (retried - lost) / 1000;
      assert.ok(
        seconds < HEARTBEAT_TIMEOUT_S + RETRY_INTERVAL_S + 20,
        `the retry came ${seconds.toFixed(1)} s after the worker was lost (heartbeat timeout ${HEARTBEAT_TIMEOUT_S} s)`,
      );
      console.log(`prepareData retried ${seconds.toFixed(1)} s after its worker was lost`);
      await handle.result();
      assert.equal((await campaignStatus(store, ID)).status, 'done');
      assert.deepEqual(await artifactDigests(store, ID), reference);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await connection.close();
      await server.stop();
    }
  });
});
