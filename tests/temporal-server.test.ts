/**
 * The campaign end to end on a real Temporal server, taken from TEMPORAL_ADDRESS (e.g.
 * `temporal server start-dev`, or docker/docker-compose.yml). Where it is unset these tests are
 * skipped: the test server binaries are downloaded at run time, which this machine cannot do.
 * Only the unreachable-server check runs everywhere.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse as parseYaml } from 'yaml';
import { storeFor } from '../store/open.js';
import { campaignKeys } from '../workflows/keys.js';
import { getJson } from '../store/store.js';
import {
  queryProgress,
  startCampaign,
  stopCampaign,
  TemporalUnavailableError,
  workflowIdFor,
} from '../engines/temporal/client.js';
import { temporalCommand, TemporalUsageError } from '../engines/temporal/cli.js';
import { createWorkers, type CampaignWorkers } from '../engines/temporal/worker.js';
import { readStatus } from '../engines/records.js';
import { parseCampaignConfig, type CampaignConfig } from '../workflows/config.js';
import type { LapRecord } from '../workflows/types.js';

const address = process.env.TEMPORAL_ADDRESS;
const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
// `npm run temporal:test` sets TEMPORAL_ADDRESS to a server it started, and DIFFEM_REQUIRE_TEMPORAL=1 so
// that a missing address fails instead of skipping.
if (!address && process.env.DIFFEM_REQUIRE_TEMPORAL === '1')
  throw new Error('DIFFEM_REQUIRE_TEMPORAL=1 but TEMPORAL_ADDRESS is unset');
const skip = address
  ? false
  : 'TEMPORAL_ADDRESS is unset: start a server with `npm run temporal:dev`, or run `npm run temporal:test`';
const root = fileURLToPath(new URL('../..', import.meta.url));

test('an unreachable server gives an error that names its address', async () => {
  await assert.rejects(queryProgress('nobody', { address: '127.0.0.1:1', connectTimeout: '1s' }), (error: unknown) => {
    assert.ok(error instanceof TemporalUnavailableError);
    assert.match(error.message, /127\.0\.0\.1:1/);
    return true;
  });
});

test('the Temporal subcommands reject bad arguments with their usage', async () => {
  await assert.rejects(temporalCommand('worker', ['--queue', 'diffem-tpu']), (error: unknown) => {
    assert.ok(error instanceof TemporalUsageError);
    assert.match(error.message, /--queue must be diffem-cpu, diffem-gpu or all/);
    assert.match(error.message, /diffem schedule create/);
    return true;
  });
  await assert.rejects(
    temporalCommand('schedule', ['create', 'nightly', 'cfg.yaml', '--store', 's']),
    /give one of --cron or --every/,
  );
  await assert.rejects(temporalCommand('pause', []), /'pause' takes one campaign ID/);
  await assert.rejects(temporalCommand('stop', ['a', '--bogus']), TemporalUsageError);
});

describe('tiny campaign on a Temporal server', () => {
  let env: TestWorkflowEnvironment;
  let workers: CampaignWorkers;
  let running: Promise<void>;
  let dir: string;
  let config: CampaignConfig;
  // Unique queues: a shared server may have other diffem workers polling the default ones.
  const queues = { cpu: `diffem-cpu-${randomUUID()}`, gpu: `diffem-gpu-${randomUUID()}` };

  before(async () => {
    if (!address) return;
    dir = await mkdtemp(path.join(tmpdir(), 'diffem-temporal-server-'));
    config = parseCampaignConfig(
      parseYaml(await readFile(path.join(root, 'examples/manifold-tiny.yaml'), 'utf8')),
      'manifold-tiny.yaml',
    );
    env = await TestWorkflowEnvironment.createFromExistingServer({ address, namespace });
    workers = await createWorkers({
      queue: 'all',
      connection: env.nativeConnection,
      namespace,
      queues,
      concurrency: 2,
      shutdownGraceTime: '5s',
    });
    running = workers.run();
  });

  after(async () => {
    if (!address) return;
    await workers?.shutdown();
    await running;
    await env?.teardown();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('runs every lap, continues-as-new between laps, and records the laps in the store', { skip }, async () => {
    const campaignId = `tiny-${randomUUID().slice(0, 8)}`;
    const store = path.join(dir, 'store');
    const started = await startCampaign({
      store,
      campaignId,
      config,
      address,
      namespace,
      wait: true,
      options: { queues, lapsPerRun: 1 },
    });
    const summary = started.summary;
    assert.ok(summary);
    assert.equal(summary.campaignId, campaignId);
    assert.equal(summary.laps, config.em.laps);
    assert.ok(summary.prior && summary.priorSamples && summary.figures.length === 1);
    assert.ok(Number.isFinite(summary.lastMetrics.sinkhorn));

    const s = storeFor(store);
    for (let lap = 0; lap <= config.em.laps; lap++) {
      const record = await getJson<LapRecord>(s, campaignKeys.lapRecord(campaignId, lap));
      assert.equal(record.lap, lap);
      assert.ok(Number.isFinite(record.metrics.sinkhorn));
    }
    assert.equal((await readStatus(s, campaignId))?.status, 'done');

    // The last run's history names its activities by step id.
    const history = await env.client.workflow.getHandle(workflowIdFor(campaignId)).fetchHistory();
    const ids = (history.events ?? []).flatMap((e) =>
      e.activityTaskScheduledEventAttributes?.activityId ? [e.activityTaskScheduledEventAttributes.activityId] : [],
    );
    assert.ok(ids.includes('final/prior'), `activity ids: ${ids.join(', ')}`);

    const progress = await queryProgress(campaignId, { address, namespace });
    assert.equal(progress.phase, 'done');
    assert.ok(progress.run > 1, 'lapsPerRun 1 should have continued-as-new');
  });

  test('stop ends the laps early and the campaign still finishes', { skip }, async () => {
    const campaignId = `tiny-stop-${randomUUID().slice(0, 8)}`;
    const store = path.join(dir, 'store');
    const started = await startCampaign({ store, campaignId, config, address, namespace, options: { queues } });
    const stopped = await stopCampaign(campaignId, { address, namespace });
    assert.equal(stopped.stopRequested, true);
    const summary = await env.client.workflow.getHandle(started.workflowId).result();
    assert.ok(summary);
    assert.equal(summary.laps, 0);
  });
});
