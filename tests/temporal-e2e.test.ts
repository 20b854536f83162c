/**
 * Campaigns on a real Temporal server (the pinned CLI's `server start-dev`), driven as a user
 * drives them: `diffem run --engine temporal`, `diffem progress|pause|unpause|stop`,
 * `diffem schedule ...`, `diffem status|history`, with one `diffem worker` child process per
 * task queue. Every finished campaign must produce the artifacts of the embedded engine's run
 * of the same config, byte for byte (sha256), whatever happened on the way.
 *
 * `npm run temporal:test` builds the server and runs this file; without a built CLI it is
 * skipped (and fails under DIFFEM_REQUIRE_TEMPORAL=1, as in CI).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { runCli, REPO } from './helpers/cli.js';
import { artifactDigests, campaignStatus, lapHistory } from './helpers/campaign-cli.js';
import { recordHistory } from './helpers/recorded-histories.js';
import { DevServer, diffem, serverSkipReason, sleep, waitFor, WorkerProcess } from './helpers/temporal-server.js';
import { progressQuery, type CampaignProgressView } from '../workflows/temporal.js';

const TINY = path.join(REPO, 'examples', 'manifold-tiny.yaml');
const skip = serverSkipReason();

/** Every Temporal campaign here is `tiny`, like the embedded reference, each in a namespace of its own. */
const ID = 'tiny';
const WORKFLOW_ID = `diffem-${ID}`;
const NAMESPACES = ['e2e-run', 'e2e-worker-lost', 'e2e-pause', 'e2e-stop', 'e2e-cancel', 'e2e-schedule'];

interface Harness {
  dir: string;
  bundle: string;
  server: DevServer;
  connection: Connection;
  reference: Map<string, string>;
}

let h: Harness;

/** One test's campaign space: a namespace, a store, and a `diffem worker` per queue in it. */
class Space {
  readonly store: string;
  readonly client: Client;
  cpu: WorkerProcess;
  gpu: WorkerProcess;

  constructor(readonly namespace: string) {
    this.store = path.join(h.dir, namespace);
    this.client = new Client({ connection: h.connection, namespace });
    this.cpu = WorkerProcess.start('diffem-cpu', h.server.address, h.bundle, namespace);
    this.gpu = WorkerProcess.start('diffem-gpu', h.server.address, h.bundle, namespace);
  }

  diffem(args: string[]): Promise<string> {
    return diffem(h.server.address, args, this.namespace);
  }

  async progress(id = ID): Promise<CampaignProgressView> {
    return JSON.parse(await this.diffem(['progress', id, '--json'])) as CampaignProgressView;
  }

  /**
   * The progress query from this process: for waiting on a state, polled fast. The controls and
   * the checks a user makes go through `diffem`; a CLI process per poll is seconds on a loaded
   * machine, long enough to miss a lap.
   */
  async observe(workflowId = WORKFLOW_ID): Promise<CampaignProgressView> {
    return this.client.workflow.getHandle(workflowId).query(progressQuery);
  }

  async control(action: 'pause' | 'unpause' | 'stop', id = ID): Promise<CampaignProgressView> {
    return JSON.parse(await this.diffem([action, id, '--json'])) as CampaignProgressView;
  }

  /** Starts the tiny campaign as a user does. */
  async run(...flags: string[]): Promise<void> {
    const out = await this.diffem(['run', TINY, '--engine', 'temporal', '--store', this.store, '--id', ID, ...flags]);
    assert.match(out, new RegExp(`workflow: ${WORKFLOW_ID}`));
  }

  async finished(workflowId = WORKFLOW_ID): Promise<void> {
    await this.client.workflow.getHandle(workflowId).result();
  }

  async assertSameArtifacts(): Promise<void> {
    assert.deepEqual(await artifactDigests(this.store, ID), h.reference, 'artifacts differ from the embedded run');
  }

  async close(): Promise<void> {
    await Promise.all([this.cpu.stop(), this.gpu.stop()]);
  }
}

async function inSpace(namespace: string, body: (space: Space) => Promise<void>): Promise<void> {
  const space = new Space(namespace);
  try {
    await body(space);
  } finally {
    await space.close();
  }
}

before(async () => {
  if (skip) return;
  const dir = await mkdtemp(path.join(tmpdir(), 'diffem-e2e-'));
  const server = await DevServer.start({ dbFile: path.join(dir, 'temporal.sqlite'), namespaces: NAMESPACES });
  const bundle = path.join(dir, 'workflow-bundle.js');
  // The workers start from a prebuilt bundle, as deployed ones do (no webpack per worker).
  const bundled = await runCli(['worker', 'bundle', '--out', bundle]);
  assert.equal(bundled.code, 0, bundled.stderr);
  // The reference: the embedded engine's run of the same config under the same campaign id.
  const embedded = await runCli(['run', TINY, '--store', path.join(dir, 'embedded'), '--id', ID]);
  assert.equal(embedded.code, 0, embedded.stderr);
  const reference = await artifactDigests(path.join(dir, 'embedded'), ID);
  const connection = await Connection.connect({ address: server.address });
  h = { dir, bundle, server, connection, reference };
});

after(async () => {
  if (!h) return;
  await h.connection.close();
  await h.server.stop();
  await rm(h.dir, { recursive: true, force: true });
});

describe('campaigns on a Temporal dev server', { skip }, () => {
  test("run --engine temporal gives the embedded run's artifacts; a visibility query finds it by dataset and headline", async () => {
    await inSpace('e2e-run', async (space) => {
      await space.run('--search-attributes');
      await space.finished();
      const status = await campaignStatus(space.store, ID);
      assert.equal(status.status, 'done');
      assert.equal(status.engine, 'temporal');
      assert.equal(status.lapsRecorded, 3);
      await space.assertSameArtifacts();
      await recordHistory(space.client, 'tiny', WORKFLOW_ID, 'the tiny campaign, search attributes on');

      // The headline is the final reconstructions' sinkhorn (the summary's lastMetrics).
      const summary = JSON.parse(await readFile(path.join(space.store, 'campaigns', ID, 'summary.json'), 'utf8')) as {
        datasetDigest: string;
        lastMetrics: { sinkhorn: number };
      };
      const headline = summary.lastMetrics.sinkhorn;
      assert.match(summary.datasetDigest, /^[0-9a-f]{64}$/);
      // Visibility is updated asynchronously: poll the query a user would type.
      const query = (bound: string) => `DiffemDatasetDigest = "${summary.datasetDigest}" AND DiffemHeadline ${bound}`;
      const list = async (q: string): Promise<string[]> => {
        const ids: string[] = [];
        for await (const w of space.client.workflow.list({ query: q })) ids.push(w.workflowId);
        return ids;
      };
      const found = await waitFor(
        'the campaign in a visibility query',
        async () => {
          const ids = await list(query(`<= ${headline + 1e-3}`));
          return ids.length ? ids : undefined;
        },
        30_000,
      ).catch(async (error: unknown) => {
        const byDigest = await list(`DiffemDatasetDigest = "${summary.datasetDigest}"`);
        const described = await space.client.workflow.getHandle(WORKFLOW_ID).describe();
        throw new Error(
          `${error instanceof Error ? error.message : String(error)}; by digest alone: [${byDigest.join(', ')}]; ` +
            `its search attributes: ${JSON.stringify(described.typedSearchAttributes)}`,
        );
      });
      assert.deepEqual(found, [WORKFLOW_ID]);
      assert.deepEqual(await list(query(`< ${headline - 1e-3}`)), [], 'a headline bound below it must exclude it');
      // The same query through the Temporal CLI, as the docs show it.
      const cli = await h.server.temporal([
        'workflow',
        'list',
        '--namespace',
        space.namespace,
        '--query',
        query('>= 0'),
      ]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(cli.stdout, new RegExp(WORKFLOW_ID));
    });
  });

  test('worker lost in training: a fresh worker resumes the activity from its checkpoint', async () => {
    await inSpace('e2e-worker-lost', async (space) => {
      // Seconds, yet long enough that a worker starved of CPU by a loaded machine still heartbeats in time.
      await space.run('--heartbeat-timeout', '10s');
      // Kill the GPU worker once the first training has written a checkpoint, mid-training.
      const checkpoint = path.join(space.store, 'campaigns', ID, 'lap-000', 'train', 'checkpoint.safetensors');
      await waitFor('the first training checkpoint', async () => (existsSync(checkpoint) ? true : undefined));
      const killed = await space.gpu.kill();
      assert.equal(killed.signal, 'SIGKILL');
      space.gpu = WorkerProcess.start('diffem-gpu', h.server.address, h.bundle, space.namespace);
      await space.finished();

      const lap0 = (await lapHistory(space.store, ID))[0];
      assert.ok(lap0.failures >= 1, `lap 0 recorded ${lap0.failures} failed attempts: the kill came too late`);
      const history = await space.client.workflow.getHandle(WORKFLOW_ID).fetchHistory();
      const scheduled = new Map<string, string>();
      let resumedFromStep = -1;
      for (const e of history.events ?? []) {
        const s = e.activityTaskScheduledEventAttributes;
        if (s?.activityId) scheduled.set(String(e.eventId), s.activityId);
        const c = e.activityTaskCompletedEventAttributes;
        if (c && scheduled.get(String(c.scheduledEventId)) === 'lap-000/train') {
          const payload = c.result?.payloads?.[0]?.data;
          assert.ok(payload);
          resumedFromStep = (JSON.parse(Buffer.from(payload).toString('utf8')) as { resumedFromStep: number })
            .resumedFromStep;
        }
      }
      assert.ok(resumedFromStep > 0, `the retry resumed from step ${resumedFromStep}`);
      await space.assertSameArtifacts();
      await recordHistory(space.client, 'worker-lost', WORKFLOW_ID, 'training retried after its heartbeat timeout');
    });
  });

  test('pause mid-lap holds the campaign at the lap boundary; unpause completes it; a pause in the last lap is refused', async () => {
    await inSpace('e2e-pause', async (space) => {
      await space.run();
      await waitFor('lap 0 in progress', async () => ((await space.observe()).phase === 'lap' ? true : undefined));
      const paused = await space.control('pause');
      assert.equal(paused.paused, true);
      // The lap in flight finishes, then nothing more runs.
      const held = await waitFor('the paused campaign at its lap boundary', async () => {
        const p = await space.observe();
        return p.step === 'recorded' ? p : undefined;
      });
      assert.equal(held.paused, true);
      const lapsAtPause = (await lapHistory(space.store, ID)).length;
      await sleep(4000);
      const still = await space.progress();
      assert.equal(still.paused, true);
      assert.equal(still.lap, held.lap);
      assert.equal((await lapHistory(space.store, ID)).length, lapsAtPause, 'a lap ran while paused');
      assert.match(await space.diffem(['progress', ID]), /paused/);

      const resumed = await space.control('unpause');
      assert.equal(resumed.paused, false);

      // Held again at the boundary before the last lap, then let into it: no boundary is left,
      // so a pause is refused there instead of being accepted and ignored.
      if (held.lap < held.laps - 1) {
        await waitFor('the next lap', async () => ((await space.observe()).lap > held.lap ? true : undefined));
        await space.control('pause');
        const beforeLast = await waitFor('the campaign held before its last lap', async () => {
          const p = await space.observe();
          return p.step === 'recorded' && p.paused ? p : undefined;
        });
        assert.equal(beforeLast.lap, beforeLast.laps - 1);
        await space.control('unpause');
      }
      const refused = await runCli(['pause', ID], {
        TEMPORAL_ADDRESS: h.server.address,
        TEMPORAL_NAMESPACE: space.namespace,
      });
      assert.equal(refused.code, 1, refused.stdout);
      assert.match(
        refused.stderr,
        /in its last lap \(2 of 2\): 'pause' acts at the next lap boundary and there is none left/,
      );
      assert.equal((await space.observe()).paused, false);

      await space.finished();
      assert.equal((await campaignStatus(space.store, ID)).status, 'done');
      await space.assertSameArtifacts();
      await recordHistory(space.client, 'pause-unpause', WORKFLOW_ID, 'pause update mid-lap, then unpause');
    });
  });

  test('stop ends the campaign with the laps done, and status says stopped', async () => {
    await inSpace('e2e-stop', async (space) => {
      await space.run();
      // Hold it at a lap boundary first (pause at once: lap 0 has no boundary before it, so it is held
      // after lap 0 unless lap 0 ends before the pause arrives); a stop during the last lap would show nothing.
      assert.equal((await space.control('pause')).paused, true);
      const held = await waitFor('the lap boundary', async () => {
        const p = await space.observe();
        return p.step === 'recorded' ? p : undefined;
      });
      assert.ok(held.lap < held.laps, `held after lap ${held.lap} of ${held.laps}: nothing left to stop`);
      const stopping = await space.control('stop');
      assert.equal(stopping.stopRequested, true);
      await space.finished();
      const status = await campaignStatus(space.store, ID);
      assert.equal(status.status, 'stopped');
      assert.equal(status.finished, true, 'the final stage ran with the laps done');
      const laps = await lapHistory(space.store, ID);
      assert.deepEqual(
        laps.map((l) => l.lap),
        Array.from({ length: held.lap + 1 }, (_, lap) => lap),
        'the laps done when it stopped, and no more',
      );
      // The laps it ran are the embedded run's laps.
      for (const lap of laps)
        for (const a of lap.artifacts)
          assert.equal(a.sha256, h.reference.get(a.key.replace(`campaigns/${ID}/`, 'campaigns/*/')), a.key);
      await recordHistory(
        space.client,
        'stop',
        WORKFLOW_ID,
        'paused at a lap boundary, then stopped: final stage with the laps done',
      );
    });
  });

  test('cancel stops the running activities and records the campaign as stopped', async () => {
    await inSpace('e2e-cancel', async (space) => {
      await space.run();
      await waitFor('lap 0 in progress', async () => ((await space.observe()).phase === 'lap' ? true : undefined));
      const cancelled = await h.server.temporal([
        'workflow',
        'cancel',
        '--namespace',
        space.namespace,
        '--workflow-id',
        WORKFLOW_ID,
      ]);
      assert.equal(cancelled.code, 0, cancelled.stderr);
      await assert.rejects(space.finished(), /cancel/i);
      const status = await waitFor('status stopped', async () => {
        const s = await campaignStatus(space.store, ID);
        return s.status === 'stopped' ? s : undefined;
      });
      assert.equal(status.finished, false);
      await recordHistory(space.client, 'cancel', WORKFLOW_ID, 'workflow cancelled during lap 0');
    });
  });

  test('schedules: a triggered run is controlled by the id schedule list shows; a trigger while it runs is skipped', async () => {
    await inSpace('e2e-schedule', async (space) => {
      const scheduleId = 'nightly';
      await space.diffem(['schedule', 'create', scheduleId, TINY, '--store', space.store, '--cron', '0 3 1 1 *']);
      try {
        await space.diffem(['schedule', 'trigger', scheduleId]);
        const first = await waitFor('the triggered run in schedule list', async () => {
          const rows = JSON.parse(await space.diffem(['schedule', 'list', '--json'])) as Array<{
            scheduleId: string;
            recentRuns: Array<{ workflowId: string; campaignId: string }>;
          }>;
          return rows.find((r) => r.scheduleId === scheduleId)?.recentRuns[0];
        });
        assert.match(first.workflowId, /^diffem-nightly-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        assert.equal(first.campaignId, first.workflowId.replace(/^diffem-/, '').replaceAll(':', '-'));
        assert.match(await space.diffem(['schedule', 'list']), new RegExp(first.campaignId));

        // The run is controlled by the campaign id `schedule list` prints (paused at once, as in the stop test) ...
        const paused = await space.control('pause', first.campaignId);
        assert.equal(paused.paused, true);
        assert.equal(paused.campaignId, first.campaignId);
        await waitFor('the scheduled run held at its lap boundary', async () =>
          (await space.observe(first.workflowId)).step === 'recorded' ? true : undefined,
        );
        // ... a trigger while it runs is skipped (SKIP), not a second campaign ...
        await space.diffem(['schedule', 'trigger', scheduleId]);
        // ... and by the workflow id it lists.
        assert.equal((await space.progress(first.workflowId)).paused, true);
        assert.equal((await space.control('stop', first.campaignId)).stopRequested, true);
        await space.finished(first.workflowId);

        const description = await space.client.schedule.getHandle(scheduleId).describe();
        assert.equal(description.info.recentActions.length, 1, 'the second trigger started a run beside the first');
        assert.ok(description.info.numActionsSkippedOverlap >= 1, 'the second trigger was not recorded as skipped');
        assert.equal((await campaignStatus(space.store, first.campaignId)).status, 'stopped');
        await recordHistory(
          space.client,
          'scheduled-run',
          first.workflowId,
          'a scheduled run: paused, then stopped, by campaign id',
        );
      } finally {
        await space.diffem(['schedule', 'delete', scheduleId]);
      }
    });
  });

  test('progress of an unknown campaign names the workflows it looked for', async () => {
    const result = await runCli(['progress', 'nobody-2025-01-01T03-00-00Z'], { TEMPORAL_ADDRESS: h.server.address });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no campaign 'nobody-2025-01-01T03-00-00Z'.*diffem-nobody-2025-01-01T03:00:00Z/);
  });
});
