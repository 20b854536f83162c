/**
 * Every campaign activity inside Temporal's activity context (MockActivityEnvironment), on the
 * tiny manifold config: results, heartbeats, resumption of training from the details of the
 * last heartbeat, cancellation, and bad input as non-retryable failures with a type.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { parse as parseYaml } from 'yaml';
import { createActivities } from '../activities/index.js';
import { storeFor } from '../store/open.js';
import { putTensors } from '../store/tensors.js';
import { createEngineActivities } from '../engines/temporal/activities.js';
import { readManifest, readStatus } from '../engines/records.js';
import { ndarray } from '../models/ndarray.js';
import { parseCampaignConfig, type CampaignConfig } from '../workflows/config.js';
import type {
  ArtifactRef,
  InitializeOutput,
  PreparedData,
  ShardPlan,
  StepInput,
  TrainOutput,
} from '../workflows/types.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const activities = createActivities();
const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

let dir: string;
let config: CampaignConfig;
let base: StepInput;
let data: PreparedData;
let plan: ShardPlan;
let init: InitializeOutput;
let model: TrainOutput;

function env(info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}): MockActivityEnvironment {
  return new MockActivityEnvironment(info, { logger: quiet });
}

/** `env.run` with the activity's own types (its declaration infers `unknown` for the result). */
function run<I, O>(environment: MockActivityEnvironment, fn: (input: I) => Promise<O>, input: I): Promise<O> {
  return environment.run(fn, input) as Promise<O>;
}

/** Asserts a non-retryable ApplicationFailure of the given type. */
function badInput(type: string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof ApplicationFailure, `expected ApplicationFailure, got ${String(error)}`);
    assert.equal(error.type, type);
    assert.equal(error.nonRetryable, true);
    return true;
  };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-temporal-activities-'));
  config = parseCampaignConfig(
    parseYaml(await readFile(path.join(root, 'examples/manifold-tiny.yaml'), 'utf8')),
    'manifold-tiny.yaml',
  );
  base = { store: path.join(dir, 'main'), campaignId: 'tiny', config };
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('campaign activities in a Temporal activity context', () => {
  test('prepareData and shardDataset write the dataset and its shards', async () => {
    data = await run(env(), activities.prepareData, base);
    assert.equal(data.count, config.data.count);
    assert.equal(data.datasetDigest, data.observations.sha256);
    assert.equal(data.attempt, 1);
    plan = await run(env(), activities.shardDataset, { ...base, observations: data.observations });
    assert.equal(plan.shards.length, Math.ceil(config.data.count / config.em.shardSize));
  });

  test('initializeGaussian heartbeats per shard and draws one sample per observation', async () => {
    const e = env();
    const beats: unknown[] = [];
    e.on('heartbeat', (d: unknown) => beats.push(d));
    init = await run(e, activities.initializeGaussian, { ...base, shards: plan.shards });
    assert.equal(init.samples.length, plan.shards.length);
    assert.equal(beats.length, plan.shards.length);
  });

  test('evaluate returns the manifold metrics', async () => {
    const out = await run(env(), activities.evaluate, {
      ...base,
      lap: 0,
      shards: plan.shards,
      samples: init.samples,
      clean: data.clean,
      truth: data.truth,
    });
    for (const key of ['sinkhorn', 'curve_distance_mean', 'coverage', 'consistency'])
      assert.ok(Number.isFinite(out.metrics[key]), key);
  });

  test('trainConditional heartbeats its step and checkpoint', async () => {
    const e = env();
    const beats: Array<{ step: number; steps: number; checkpoint: string }> = [];
    e.on('heartbeat', (d: { step: number; steps: number; checkpoint: string }) => beats.push(d));
    model = await run(e, activities.trainConditional, { ...base, lap: 0, samples: init.samples, init: null });
    const steps = config.training.firstSteps ?? config.training.steps;
    assert.equal(model.steps, steps);
    assert.equal(model.resumedFromStep, 0);
    assert.ok(beats.length > 0);
    assert.ok(beats.some((b) => b.step === steps));
    assert.ok(beats.every((b) => b.checkpoint.endsWith('checkpoint.safetensors')));
  });

  test('trainConditional resumes after cancellation from the last heartbeat, to the same weights', async () => {
    // A second store with the same data, so that no checkpoint of the run above exists there.
    const other = path.join(dir, 'resumed');
    await cp(path.join(dir, 'main'), other, { recursive: true });
    await rm(path.join(other, 'campaigns', 'tiny', 'lap-000', 'train'), { recursive: true, force: true });
    const input = { ...base, store: other, lap: 0, samples: init.samples, init: null };

    const first = env();
    let last: unknown;
    first.on('heartbeat', (d: { step: number; loss?: number }) => {
      last = d;
      // Checkpoint heartbeats come without a loss, once the checkpoint is stored: cancel there.
      if (d.loss === undefined && d.step >= config.training.checkpointEvery) first.cancel();
    });
    await assert.rejects(run(first, activities.trainConditional, input), CancelledFailure);
    assert.ok(last, 'no heartbeat before the cancellation');

    const second = env({ attempt: 2, heartbeatDetails: last });
    const resumed = await run(second, activities.trainConditional, input);
    assert.ok(resumed.resumedFromStep > 0, 'the retry did not resume from the checkpoint');
    assert.ok(resumed.resumedFromStep < resumed.steps);
    assert.equal(resumed.attempt, 2);
    assert.equal(resumed.weights.sha256, model.weights.sha256, 'resumed training ended with other weights');
  });

  test('posteriorSample heartbeats every sampler step', async () => {
    const e = env();
    const beats: unknown[] = [];
    e.on('heartbeat', (d: unknown) => beats.push(d));
    const out = await run(e, activities.posteriorSample, { ...base, lap: 1, shard: plan.shards[0], model: model.onnx });
    assert.equal(beats.length, config.estep.steps);
    assert.equal(out.evaluations, (plan.shards[0].end - plan.shards[0].start) * (config.estep.steps + 1));
  });

  test('posteriorSample cancelled mid-way fails with CancelledFailure', async () => {
    const e = env();
    let beats = 0;
    e.on('heartbeat', () => {
      if (++beats === 2) e.cancel();
    });
    await assert.rejects(
      run(e, activities.posteriorSample, { ...base, lap: 1, shard: plan.shards[1], model: model.onnx }),
      CancelledFailure,
    );
    assert.ok(beats < config.estep.steps);
  });

  test('trainPrior, samplePrior, renderFigures, recordLap and finishCampaign', async () => {
    const e = env();
    let beats = 0;
    e.on('heartbeat', () => beats++);
    const prior = await run(e, activities.trainPrior, {
      ...base,
      lap: config.em.laps + 1,
      samples: init.samples,
      init: null,
    });
    assert.equal(prior.steps, config.prior.steps);
    assert.ok(beats > 0);
    const samples = await run(env(), activities.samplePrior, {
      ...base,
      model: prior.onnx,
      clean: data.clean,
      truth: data.truth,
    });
    assert.ok(Number.isFinite(samples.metrics.sinkhorn));
    const figures = await run(env(), activities.renderFigures, {
      ...base,
      laps: [{ lap: 0, samples: init.samples }],
      prior: samples.samples,
      truth: data.truth,
    });
    assert.equal(figures.figures.length, 1);
    const record = await run(env(), activities.recordLap, {
      ...base,
      record: {
        lap: 0,
        metrics: {},
        artifacts: [],
        seconds: 0,
        seeds: {},
        steps: [],
        attempts: 1,
        failures: 0,
        evaluations: 0,
      },
    });
    assert.match(record.key, /laps\/lap-000\.json$/);
    const summary = await run(env(), activities.finishCampaign, {
      ...base,
      summary: {
        campaignId: 'tiny',
        laps: 0,
        datasetDigest: data.datasetDigest,
        finalModel: model.weights,
        prior: prior.weights,
        priorSamples: samples.samples,
        priorMetrics: samples.metrics,
        figures: figures.figures,
        lastMetrics: {},
      },
    });
    assert.match(summary.key, /summary\.json$/);
  });

  test('engine activities write the manifest and status of a scheduled campaign', async () => {
    const engine = createEngineActivities();
    const opened = await run(env(), engine.openScheduledCampaign, {
      store: base.store,
      campaignId: 'nightly-1',
      config,
    });
    assert.equal(opened.created, true);
    const store = storeFor(base.store);
    assert.equal((await readManifest(store, 'nightly-1'))?.engine, 'temporal');
    await run(env(), engine.setCampaignStatus, {
      store: base.store,
      campaignId: 'nightly-1',
      status: 'failed',
      error: 'boom',
      step: 'lap-001/train',
    });
    const status = await readStatus(store, 'nightly-1');
    assert.ok(status);
    assert.equal(status.status, 'failed');
    assert.equal(status.step, 'lap-001/train');
  });
});

describe('bad input fails without retry', () => {
  test('a missing artifact: ArtifactNotFound', async () => {
    const missing: ArtifactRef = { key: 'campaigns/tiny/data/nothing.safetensors', sha256: '0'.repeat(64), bytes: 10 };
    await assert.rejects(
      run(env(), activities.shardDataset, { ...base, observations: missing }),
      badInput('ArtifactNotFound'),
    );
  });

  test('a corrupt artifact (digest mismatch): ArtifactCorrupt', async () => {
    const corrupt: ArtifactRef = { ...data.observations, sha256: 'f'.repeat(64) };
    await assert.rejects(
      run(env(), activities.shardDataset, { ...base, observations: corrupt }),
      badInput('ArtifactCorrupt'),
    );
  });

  test('a tensor of the wrong shape: ShapeMismatch', async () => {
    const wrong = await putTensors(storeFor(base.store), 'campaigns/tiny/bad/samples.safetensors', {
      x: ndarray([8, config.data.dim + 1]),
    });
    await assert.rejects(
      run(env(), activities.evaluate, {
        ...base,
        lap: 1,
        shards: plan.shards,
        samples: [wrong],
        clean: data.clean,
        truth: data.truth,
      }),
      badInput('ShapeMismatch'),
    );
  });
});
