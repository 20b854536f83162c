/**
 * The split deployment on a real Temporal server (TEMPORAL_ADDRESS; skipped without one): one
 * worker per task queue, as the compose file and the k8s overlays run them (CPU, training,
 * sampling), and a campaign that can only finish if every activity reaches the worker of its
 * own queue. The history then shows which queue each activity was scheduled on.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse as parseYaml } from 'yaml';
import { startCampaign, workflowIdFor } from '../engines/temporal/client.js';
import { createWorkers, type CampaignWorkers, type QueueChoice } from '../engines/temporal/worker.js';
import { parseCampaignConfig } from '../workflows/config.js';
import { SAMPLE_ACTIVITIES, TRAIN_ACTIVITIES, type CampaignQueues } from '../workflows/temporal.js';
import { REPO } from './helpers/cli.js';

const address = process.env.TEMPORAL_ADDRESS;
const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';

let env: TestWorkflowEnvironment;
let dir: string;
const pools: Array<{ workers: CampaignWorkers; running: Promise<void> }> = [];
// Unique names: a shared server may have other diffem workers polling the default queues.
const suffix = randomUUID().slice(0, 8);
const queues: CampaignQueues = {
  cpu: `diffem-cpu-${suffix}`,
  train: `diffem-gpu-train-${suffix}`,
  sample: `diffem-gpu-sample-${suffix}`,
};

before(async () => {
  if (!address) return;
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-deploy-queues-'));
  env = await TestWorkflowEnvironment.createFromExistingServer({ address, namespace });
  for (const queue of ['diffem-cpu', 'diffem-gpu-train', 'diffem-gpu-sample'] as QueueChoice[]) {
    const workers = await createWorkers({
      queue,
      queues,
      device: 'cpu',
      connection: env.nativeConnection,
      namespace,
      shutdownGraceTime: '5s',
      log: () => undefined,
    });
    pools.push({ workers, running: workers.run() });
  }
});

after(async () => {
  for (const pool of pools) await pool.workers.shutdown();
  await Promise.all(pools.map((pool) => pool.running));
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test(
  'one worker per queue runs a campaign: training and sampling each on their own queue',
  {
    // npm run temporal:test sets DIFFEM_REQUIRE_TEMPORAL: there a missing server fails instead.
    skip:
      !address &&
      !process.env.DIFFEM_REQUIRE_TEMPORAL &&
      'needs a Temporal server: set TEMPORAL_ADDRESS (npm run temporal:test)',
  },
  async () => {
    assert.deepEqual(
      pools.map((p) => p.workers.workers.map((w) => w.options.taskQueue)),
      [[queues.cpu], [queues.train], [queues.sample]],
    );
    const config = parseCampaignConfig(
      parseYaml(await readFile(path.join(REPO, 'examples/manifold-tiny.yaml'), 'utf8')),
      'manifold-tiny.yaml',
    );
    const campaignId = `split-${suffix}`;
    const started = await startCampaign({
      store: path.join(dir, 'store'),
      campaignId,
      config,
      address,
      namespace,
      wait: true,
      options: { queues },
    });
    assert.equal(started.summary?.laps, config.em.laps);

    const history = await env.client.workflow.getHandle(workflowIdFor(campaignId)).fetchHistory();
    const scheduled = new Map<string, Set<string>>();
    for (const event of history.events ?? []) {
      const attributes = event.activityTaskScheduledEventAttributes;
      const type = attributes?.activityType?.name;
      if (!attributes || !type) continue;
      scheduled.set(type, (scheduled.get(type) ?? new Set()).add(attributes.taskQueue?.name ?? '?'));
    }
    for (const [type, onQueues] of scheduled) {
      const expected = TRAIN_ACTIVITIES.includes(type as never)
        ? queues.train
        : SAMPLE_ACTIVITIES.includes(type as never)
          ? queues.sample
          : queues.cpu;
      assert.deepEqual([...onQueues], [expected], type);
    }
    assert.ok(scheduled.has('trainConditional') && scheduled.has('posteriorSample'), [...scheduled.keys()].join(', '));
  },
);
