/**
 * The Temporal workflow without a server: the sandbox check of the bundler, and replay of
 * histories (generated in the JSON shape of `temporal workflow show -o json`) that pin the
 * order, names and ids of the campaign's activities and the control logic (pause, stop,
 * continue-as-new, scheduled runs).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { parse as parseYaml } from 'yaml';
import { isNonRetryable } from '../activities/errors.js';
import { candidateWorkflowIds } from '../engines/temporal/client.js';
import { bundleWorkflows } from '../engines/temporal/worker.js';
import { parseCampaignConfig, type CampaignConfig } from '../workflows/config.js';
import { campaignIdFromWorkflowId, NON_RETRYABLE_ERROR_TYPES, WORKFLOW_TYPE } from '../workflows/temporal.js';
import {
  buildHistory,
  campaignHistory,
  campaignTurns,
  fakeResult,
  type CampaignScript,
  type HistoryJson,
  type Turn,
} from './helpers/history.js';
import { HISTORIES_DIR, readHistoryIndex } from './helpers/recorded-histories.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const workflowsPath = fileURLToPath(new URL('../workflows/index.js', import.meta.url));
const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

let config: CampaignConfig;
let bundle: WorkflowBundle;

before(async () => {
  // The replayer logs each nondeterminism at length; the assertions below say what matters.
  Runtime.install({
    logger: quietLogger,
    telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
  });
  config = parseCampaignConfig(
    parseYaml(await readFile(path.join(root, 'examples/manifold-tiny.yaml'), 'utf8')),
    'manifold-tiny.yaml',
  );
});

function script(overrides: Partial<CampaignScript> = {}): CampaignScript {
  const shards = Math.ceil(config.data.count / config.em.shardSize);
  assert.ok(shards <= config.em.concurrency, 'the scripts assume every shard of an E-step is in flight at once');
  return {
    workflowType: WORKFLOW_TYPE,
    laps: config.em.laps,
    shards,
    cpu: 'diffem-cpu',
    gpu: 'diffem-gpu',
    input: { store: 'file:///tmp/diffem-replay', campaignId: 'tiny', config },
    ...overrides,
  };
}

function replay(history: HistoryJson, workflowId = 'diffem-tiny'): Promise<void> {
  return Worker.runReplayHistory({ workflowBundle: bundle, replayName: 'diffem-replay' }, history, workflowId);
}

function history(turns: Turn[], input: unknown = script().input): HistoryJson {
  return buildHistory({ workflowType: WORKFLOW_TYPE, taskQueue: 'diffem-cpu', input: [input] }, turns);
}

describe('workflow bundle', () => {
  test('bundles the compiled workflows (no Node built-ins reachable), as `diffem worker bundle` does', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'diffem-bundle-'));
    try {
      const out = path.join(dir, 'workflow-bundle.js');
      await bundleWorkflows(out);
      bundle = { code: await readFile(out, 'utf8') };
      assert.ok(bundle.code.includes('diffemCampaign'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('rejects a workflow that imports node:fs', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'diffem-bad-workflow-'));
    try {
      const bad = path.join(dir, 'bad-workflow.js');
      await writeFile(
        bad,
        "import { readFileSync } from 'node:fs';\nexport async function bad() { return readFileSync('/etc/hostname', 'utf8'); }\n",
      );
      // The bundler names the offending import in its log, then rejects.
      const logged: string[] = [];
      const recorder = {
        ...quietLogger,
        error: (message: string) => void logged.push(message),
        warn: (message: string) => void logged.push(message),
      };
      await assert.rejects(
        bundleWorkflowCode({ workflowsPath: bad, logger: recorder }),
        /Webpack finished with errors/,
      );
      assert.match(logged.join('\n'), /node:fs|'fs'/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('replay of the tiny campaign', () => {
  before(async () => {
    bundle ??= await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
  });

  test('a recorded history replays', async () => {
    await replay(campaignHistory(script()));
  });

  test('a renamed activity is a determinism violation', async () => {
    const turns = campaignTurns(script());
    const evaluate = turns.flatMap((t) => t.commands).find((c) => c.kind === 'activity' && c.id === 'lap-001/evaluate');
    assert.ok(evaluate && evaluate.kind === 'activity');
    evaluate.type = 'evaluateLap';
    await assert.rejects(replay(history(turns)), DeterminismViolationError);
  });

  test('an activity added to the history is a determinism violation', async () => {
    const turns = campaignTurns(script());
    const i = turns.findIndex((t) => t.commands.some((c) => c.kind === 'activity' && c.id === 'lap-001/evaluate'));
    turns.splice(i, 0, {
      commands: [
        {
          kind: 'activity',
          type: 'evaluate',
          id: 'lap-001/evaluate-extra',
          taskQueue: 'diffem-cpu',
          result: fakeResult('evaluate', '', 2),
        },
      ],
    });
    await assert.rejects(replay(history(turns)), DeterminismViolationError);
  });

  test('an activity missing from the history is a determinism violation', async () => {
    const turns = campaignTurns(script()).filter(
      (t) => !t.commands.some((c) => c.kind === 'activity' && c.id === 'lap-001/evaluate'),
    );
    await assert.rejects(replay(history(turns)), DeterminismViolationError);
  });

  test('pause holds the campaign at the lap boundary until resume', async () => {
    await replay(campaignHistory(script({ pauseAfterLap: 1 })));
    // Without the hold, the workflow would have scheduled the E-step where the history shows none.
    const turns = campaignTurns(script({ pauseAfterLap: 1 }));
    const held = turns.findIndex((t) => t.signalsAfter?.some((s) => s.name === 'resume'));
    turns[held].signalsAfter = [];
    await assert.rejects(replay(history(turns)), DeterminismViolationError);
  });

  test('a non-retryable activity failure records the failed status, then fails the workflow', async () => {
    const turns = campaignTurns(script());
    const i = turns.findIndex((t) => t.commands.some((c) => c.kind === 'activity' && c.id === 'lap-001/train'));
    const train = turns[i].commands[0];
    assert.ok(train.kind === 'activity');
    train.failure = { message: 'loss is NaN at step 12', type: 'NonFiniteLoss', nonRetryable: true };
    const failed: Turn[] = [
      ...turns.slice(0, i + 1),
      {
        commands: [
          { kind: 'activity', type: 'setCampaignStatus', id: 'campaign/status', taskQueue: 'diffem-cpu', result: null },
        ],
      },
      { commands: [{ kind: 'fail', message: 'Activity task failed' }] },
    ];
    await replay(history(failed));
    // Without the status write the failure path would not match.
    await assert.rejects(
      replay(history([...turns.slice(0, i + 1), { commands: [{ kind: 'fail', message: 'Activity task failed' }] }])),
      DeterminismViolationError,
    );
  });

  test('stop skips the remaining laps and runs the final stage', async () => {
    await replay(campaignHistory(script({ stopAfterLap: 1 })));
  });

  test('search attributes are upserted next to the memo when enabled', async () => {
    const s = script({ searchAttributes: true });
    s.input = { ...s.input, options: { searchAttributes: true } };
    await replay(campaignHistory(s));
  });

  test('continue-as-new after lapsPerRun laps, and the continued run', async () => {
    const first = script({ continueBeforeLap: 2 });
    first.input = { ...first.input, options: { lapsPerRun: 1 } };
    await replay(campaignHistory(first));

    const shards = first.shards;
    const prepared = fakeResult('prepareData', 'data/prepare', shards) as Record<string, unknown>;
    const plan = fakeResult('shardDataset', 'data/shard', shards) as { shards: unknown[] };
    const resume = {
      data: prepared,
      shards: plan.shards,
      nextLap: 2,
      model: fakeResult('trainConditional', 'lap-001/train', shards),
      firstSamples: (fakeResult('initializeGaussian', 'lap-000/gaussian', shards) as { samples: unknown[] }).samples,
      lastMetrics: { sinkhorn: 0.01 },
    };
    const second = script({ resumeAtLap: 2 });
    second.input = { ...first.input, resume, carried: { paused: false, stopRequested: false, run: 2 } };
    await replay(campaignHistory(second));
  });

  test('a scheduled run opens its own campaign, named after its workflow id', async () => {
    const s = script({ scheduled: true });
    s.input = { ...s.input, campaignId: 'nightly', options: { campaignIdFromWorkflowId: true } };
    await replay(campaignHistory(s), 'diffem-nightly-2025-01-01T03:00:00Z');
  });
});

describe('replay of histories recorded on a real server', () => {
  // Recorded by `npm run temporal:test` with DIFFEM_RECORD_HISTORIES=1 (tests/temporal-e2e*.test.ts):
  // they carry the SDK's own flags and the server's own events, which generated ones only imitate.
  test('every recorded history replays with the current workflow code', async () => {
    bundle ??= await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
    const recorded = await readHistoryIndex();
    assert.ok(recorded.length >= 5, `tests/histories/index.json lists ${recorded.length} histories`);
    for (const { file, workflowId } of recorded) {
      const history = JSON.parse(await readFile(path.join(HISTORIES_DIR, file), 'utf8')) as HistoryJson;
      await replay(history, workflowId).catch((error: unknown) => {
        throw new Error(`${file} does not replay: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        });
      });
    }
  });

  test('a renamed activity in a recorded history is a determinism violation', async () => {
    bundle ??= await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
    const [first] = await readHistoryIndex();
    const history = JSON.parse(await readFile(path.join(HISTORIES_DIR, first.file), 'utf8')) as {
      events: Array<{ activityTaskScheduledEventAttributes?: { activityType?: { name?: string } } }>;
    };
    const scheduled = history.events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name);
    assert.ok(scheduled, `${first.file} schedules no activity`);
    scheduled.activityTaskScheduledEventAttributes!.activityType!.name = 'renamedActivity';
    await assert.rejects(replay(history as unknown as HistoryJson, first.workflowId), DeterminismViolationError);
  });
});

describe('workflow helpers', () => {
  test('the SDK packages that load JSON histories share one protobufjs', () => {
    // Two copies make historyFromJSON fail with "TypeError: type must be a Type".
    const here = createRequire(import.meta.url);
    const protobufOf = (pkg: string) => createRequire(here.resolve(pkg)).resolve('protobufjs/package.json');
    assert.equal(protobufOf('@temporalio/common'), protobufOf('@temporalio/proto'));
  });

  test('scheduled runs get unique, valid campaign ids from their workflow ids', () => {
    assert.equal(campaignIdFromWorkflowId('diffem-nightly-2025-01-01T03:00:00Z'), 'nightly-2025-01-01T03-00-00Z');
    // ... and the controls find the workflow again from that campaign id, or from the workflow id.
    assert.ok(candidateWorkflowIds('nightly-2025-01-01T03-00-00Z').includes('diffem-nightly-2025-01-01T03:00:00Z'));
    assert.ok(
      candidateWorkflowIds('diffem-nightly-2025-01-01T03:00:00Z').includes('diffem-nightly-2025-01-01T03:00:00Z'),
    );
    assert.deepEqual(candidateWorkflowIds('m1'), ['diffem-m1']);
    assert.match(campaignIdFromWorkflowId('diffem-a/b c'), /^[A-Za-z0-9][A-Za-z0-9._-]*$/);
  });

  test('the retry policy names only error types the activities treat as bad input', () => {
    for (const type of NON_RETRYABLE_ERROR_TYPES) assert.ok(isNonRetryable({ type }), type);
  });
});

after(() => {
  // Nothing to close: replay workers shut themselves down.
});
