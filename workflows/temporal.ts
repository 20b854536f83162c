/**
 * The campaign as a Temporal workflow: `runCampaign` (campaign.ts) with a host whose calls are
 * activities, plus what only a durable server offers: pause / resume / stop from outside,
 * a progress query, continue-as-new between laps, and memo / search attributes for audit.
 *
 * This file runs in Temporal's workflow sandbox and is replayed from the event history after
 * every worker restart, so it must stay deterministic: no Node built-ins, no clock, no
 * Math.random, no I/O. Everything with an effect is an activity; everything that must be
 * remembered across continue-as-new travels in the workflow input.
 *
 * Changing the order, names or ids of the activities this code schedules breaks the replay
 * of campaigns already running: guard such changes with `patched()` (docs/temporal.md) and
 * run the replay tests over recorded histories before deploying.
 */
import {
  ActivityFailure,
  CancellationScope,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  isCancellation,
  proxyActivities,
  rootCause,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import {
  defineSearchAttributeKey,
  SearchAttributeType,
  type Duration,
  type SearchAttributeUpdatePair,
} from '@temporalio/common';
import {
  runCampaign,
  type CampaignHost,
  type CampaignInput,
  type CampaignProgress,
  type CampaignState,
} from './campaign.js';
import type { ACTIVITY_NAMES, CampaignConfig } from './config.js';
import { NON_RETRYABLE_ERROR_TYPES } from './errors.js';
import type {
  ActivityInput,
  ActivityName,
  ActivityOutput,
  CampaignActivities,
  CampaignSummary,
  Metrics,
} from './types.js';

/** The workflow type name that clients, schedules and histories refer to. */
export const WORKFLOW_TYPE = 'diffemCampaign';

/**
 * The task queues, one per kind of worker image. Training (tfjs-node-gpu: CUDA 11, cuDNN 8) and
 * sampling (ONNX Runtime's CUDA provider: CUDA 12, cuDNN 9) need CUDA stacks that no single
 * image provides cleanly, so each GPU stack polls its own queue (docker/, k8s/).
 */
export const TASK_QUEUES = { cpu: 'diffem-cpu', train: 'diffem-gpu-train', sample: 'diffem-gpu-sample' } as const;

export interface CampaignQueues {
  cpu: string;
  train: string;
  sample: string;
}

/**
 * Campaigns started before the GPU queue was split carry `{ cpu, gpu }` in their input; their
 * training and sampling stay on that one queue.
 */
export type QueueOption = CampaignQueues | { cpu: string; gpu: string };

export const DEFAULT_QUEUES: CampaignQueues = TASK_QUEUES;

/** Activities that train the network (tfjs) go to the training workers. */
export const TRAIN_ACTIVITIES: readonly ActivityName[] = ['trainConditional', 'trainPrior'];
/** Activities that run the exported network (ONNX Runtime) go to the sampling workers. */
export const SAMPLE_ACTIVITIES: readonly ActivityName[] = ['posteriorSample', 'samplePrior'];
/** Activities that run the network (training, sampling) go to the GPU workers. */
export const GPU_ACTIVITIES: readonly ActivityName[] = [...SAMPLE_ACTIVITIES, ...TRAIN_ACTIVITIES];

/** The task queue an activity is scheduled on. */
export function queueFor(name: ActivityName, queues: QueueOption): string {
  if (!GPU_ACTIVITIES.includes(name)) return queues.cpu;
  if ('gpu' in queues) return queues.gpu;
  return TRAIN_ACTIVITIES.includes(name) ? queues.train : queues.sample;
}

export { NON_RETRYABLE_ERROR_TYPES } from './errors.js';

export interface StepTimeouts {
  /** Longest one attempt may run. */
  startToClose?: Duration;
  /** Longest silence between heartbeats before the attempt counts as lost (long activities only). */
  heartbeat?: Duration;
  /** Attempts before the campaign fails. */
  maximumAttempts?: number;
}

/**
 * Defaults sized for the reference manifold scale on one GPU. An activity with a heartbeat
 * timeout heartbeats four times per timeout while it runs (activities/context.ts keepAlive),
 * so the timeout bounds how long a lost worker goes unnoticed; it must still exceed the
 * longest stretch an activity blocks its event loop (a tfjs kernel, one metric at the
 * reference scale), or it would kill healthy attempts. Activities without one are short.
 */
export const DEFAULT_TIMEOUTS: Readonly<
  Record<ActivityName, Required<Pick<StepTimeouts, 'startToClose' | 'maximumAttempts'>> & { heartbeat?: Duration }>
> = {
  prepareData: { startToClose: '1h', heartbeat: '5m', maximumAttempts: 3 },
  shardDataset: { startToClose: '30m', maximumAttempts: 3 },
  initializeGaussian: { startToClose: '2h', heartbeat: '5m', maximumAttempts: 3 },
  trainConditional: { startToClose: '12h', heartbeat: '5m', maximumAttempts: 5 },
  posteriorSample: { startToClose: '6h', heartbeat: '5m', maximumAttempts: 5 },
  evaluate: { startToClose: '1h', heartbeat: '5m', maximumAttempts: 3 },
  trainPrior: { startToClose: '12h', heartbeat: '5m', maximumAttempts: 5 },
  samplePrior: { startToClose: '2h', heartbeat: '5m', maximumAttempts: 5 },
  renderFigures: { startToClose: '30m', maximumAttempts: 3 },
  recordLap: { startToClose: '5m', maximumAttempts: 10 },
  finishCampaign: { startToClose: '5m', maximumAttempts: 10 },
};

// The config's list of activity names (config.ts ACTIVITY_NAMES) must be the activity contract's.
type SameNames<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const activityNamesAgree: SameNames<(typeof ACTIVITY_NAMES)[number], ActivityName> = true;
void activityNamesAgree;

/** Activities with a heartbeat timeout: the long ones, whose lost worker must be noticed quickly. */
export const HEARTBEAT_ACTIVITIES: readonly ActivityName[] = (Object.keys(DEFAULT_TIMEOUTS) as ActivityName[]).filter(
  (name) => DEFAULT_TIMEOUTS[name].heartbeat !== undefined,
);

/**
 * Search attributes of a campaign. Custom search attributes must be registered on the
 * namespace before a workflow may set them (otherwise the workflow task fails):
 *   temporal operator search-attribute create --namespace NS --name DiffemCampaignId --type Keyword
 *   temporal operator search-attribute create --namespace NS --name DiffemLap --type Int
 *   temporal operator search-attribute create --namespace NS --name DiffemDatasetDigest --type Keyword
 *   temporal operator search-attribute create --namespace NS --name DiffemHeadline --type Double
 * They are only written when `options.searchAttributes` is true; the memo needs no setup.
 */
export const SEARCH_ATTRIBUTES = {
  campaignId: defineSearchAttributeKey('DiffemCampaignId', SearchAttributeType.KEYWORD),
  lap: defineSearchAttributeKey('DiffemLap', SearchAttributeType.INT),
  datasetDigest: defineSearchAttributeKey('DiffemDatasetDigest', SearchAttributeType.KEYWORD),
  headline: defineSearchAttributeKey('DiffemHeadline', SearchAttributeType.DOUBLE),
} as const;

export interface TemporalCampaignOptions {
  /**
   * Continue-as-new after this many laps in one run (0: only when the server suggests it,
   * as a history nears its limits). Small values keep histories short and replay fast.
   */
  lapsPerRun?: number;
  /** Write the Diffem* search attributes (they must be registered on the namespace). */
  searchAttributes?: boolean;
  /** The metric shown as the campaign's headline in memo and search attributes. */
  headlineMetric?: string;
  /** Task queue names (tests use unique ones so they cannot collide with real workers). */
  queues?: QueueOption;
  /** Per-activity overrides of DEFAULT_TIMEOUTS (large image campaigns need longer ones). */
  timeouts?: Partial<Record<ActivityName, StepTimeouts>>;
  /**
   * Scheduled runs: the campaign id is derived from the workflow id, which Temporal makes
   * unique per scheduled run by appending the scheduled time (`diffem-nightly-2025-01-01T03:00:00Z`
   * gives the campaign `nightly-2025-01-01T03-00-00Z`). The workflow then also creates the
   * campaign's manifest in the store, which a client does for campaigns it starts itself.
   */
  campaignIdFromWorkflowId?: boolean;
}

/** What a run hands to the next one across continue-as-new, besides `resume`. */
export interface CarriedControl {
  paused: boolean;
  stopRequested: boolean;
  /** 1 for the first run, incremented by each continue-as-new. */
  run: number;
}

export interface TemporalCampaignInput extends CampaignInput {
  options?: TemporalCampaignOptions;
  carried?: CarriedControl;
}

export interface CampaignProgressView {
  campaignId: string;
  phase: CampaignProgress['phase'] | 'starting';
  /** The lap in progress (or the last one, in the final stage). */
  lap: number;
  laps: number;
  step: string;
  /** The latest metrics reported (evaluation of the current or last lap). */
  metrics: Metrics | null;
  paused: boolean;
  stopRequested: boolean;
  run: number;
  lapsThisRun: number;
  datasetDigest: string | null;
}

export type ControlAction = 'pause' | 'resume' | 'stop';

/** Pause at the next lap boundary: the lap in flight finishes (its activities are not cancelled). */
export const pauseSignal = defineSignal<[reason?: string]>('pause');
export const resumeSignal = defineSignal<[]>('resume');
/** Skip the remaining laps: the campaign goes to its final stage with the laps it has. */
export const stopSignal = defineSignal<[reason?: string]>('stop');
/** The same controls as an update: the caller learns whether it was accepted, and the new state. */
export const controlUpdate = defineUpdate<CampaignProgressView, [ControlAction]>('control');
export const progressQuery = defineQuery<CampaignProgressView>('progress');

/** Activities only the Temporal engine needs (engines/temporal/activities.ts implements them). */
export interface TemporalEngineActivities {
  /** Writes the manifest of a campaign that no client opened (scheduled runs). */
  openScheduledCampaign(input: {
    store: string;
    campaignId: string;
    config: CampaignConfig;
  }): Promise<{ created: boolean }>;
  /** Writes `campaigns/{id}/status.json`, as the embedded engine does, so `diffem status` works. */
  setCampaignStatus(input: {
    store: string;
    campaignId: string;
    status: 'running' | 'done' | 'failed' | 'stopped';
    error?: string;
    errorType?: string;
    step?: string;
  }): Promise<void>;
}

const ENGINE_TIMEOUTS: Record<keyof TemporalEngineActivities, { startToClose: Duration; maximumAttempts: number }> = {
  openScheduledCampaign: { startToClose: '5m', maximumAttempts: 10 },
  setCampaignStatus: { startToClose: '5m', maximumAttempts: 10 },
};

/** Campaign ids allow letters, digits, '.', '_' and '-' (engines/local/engine.ts). */
export function campaignIdFromWorkflowId(workflowId: string): string {
  const id = workflowId
    .replace(/^diffem-/, '')
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 128);
  return id || 'campaign';
}

function activityOptions(name: string, step: string, queue: string, timeouts: StepTimeouts): ActivityOptions {
  return {
    taskQueue: queue,
    // The step id as activity id: the event history reads like the campaign's step list, and
    // replay checks that a changed definition still schedules the same steps.
    activityId: step,
    startToCloseTimeout: timeouts.startToClose,
    heartbeatTimeout: timeouts.heartbeat,
    retry: {
      initialInterval: '10s',
      backoffCoefficient: 2,
      maximumInterval: '10m',
      maximumAttempts: timeouts.maximumAttempts,
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
    },
    summary: `${name} ${step}`,
  };
}

export async function diffemCampaign(input: TemporalCampaignInput): Promise<CampaignSummary> {
  const options = input.options ?? {};
  const queues = options.queues ?? DEFAULT_QUEUES;
  const carried: CarriedControl = input.carried ?? { paused: false, stopRequested: false, run: 1 };
  const headlineMetric = options.headlineMetric ?? 'sinkhorn';
  const laps = input.config.em.laps;

  const view: CampaignProgressView = {
    campaignId: input.campaignId,
    phase: input.resume ? 'lap' : 'starting',
    lap: input.resume ? input.resume.nextLap : 0,
    laps,
    step: input.resume ? 'continued' : 'starting',
    metrics: input.resume?.lastMetrics ?? null,
    paused: carried.paused,
    stopRequested: carried.stopRequested,
    run: carried.run,
    lapsThisRun: 0,
    datasetDigest: input.resume?.data.datasetDigest ?? null,
  };

  const apply = (action: ControlAction): void => {
    if (action === 'pause') view.paused = true;
    else if (action === 'resume') view.paused = false;
    else view.stopRequested = true;
  };
  setHandler(progressQuery, () => ({ ...view }));
  setHandler(pauseSignal, () => apply('pause'));
  setHandler(resumeSignal, () => apply('resume'));
  setHandler(stopSignal, () => apply('stop'));
  setHandler(
    controlUpdate,
    (action) => {
      apply(action);
      return { ...view };
    },
    {
      validator: (action) => {
        if (action !== 'pause' && action !== 'resume' && action !== 'stop')
          throw new Error(`unknown control action '${String(action)}'`);
        // Controls act at lap boundaries; once the laps are over there is none left.
        if (view.phase === 'final' || view.phase === 'done')
          throw new Error(`campaign ${view.campaignId} is in its final stage: '${action}' no longer applies`);
        // In the last lap, too: a pause would hold at the next boundary, and the final stage follows instead.
        if (action === 'pause' && !view.paused && inLastLap(view))
          throw new Error(
            `campaign ${view.campaignId} is in its last lap (${view.lap} of ${view.laps}): 'pause' acts at the next lap boundary and there is none left`,
          );
      },
    },
  );

  const callEngine = <K extends keyof TemporalEngineActivities>(
    name: K,
    step: string,
    activityInput: Parameters<TemporalEngineActivities[K]>[0],
  ): Promise<Awaited<ReturnType<TemporalEngineActivities[K]>>> => {
    const proxy = proxyActivities<TemporalEngineActivities>(
      activityOptions(name, step, queues.cpu, ENGINE_TIMEOUTS[name]),
    );
    const fn = proxy[name] as unknown as (
      i: typeof activityInput,
    ) => Promise<Awaited<ReturnType<TemporalEngineActivities[K]>>>;
    return fn(activityInput);
  };

  // Scheduled runs: a fresh campaign id per run, and its manifest, before anything else.
  let campaignInput: TemporalCampaignInput = input;
  if (options.campaignIdFromWorkflowId && !input.resume) {
    const campaignId = campaignIdFromWorkflowId(workflowInfo().workflowId);
    view.campaignId = campaignId;
    await callEngine('openScheduledCampaign', 'campaign/open', {
      store: input.store,
      campaignId,
      config: input.config,
    });
    campaignInput = { ...input, campaignId, options: { ...options, campaignIdFromWorkflowId: false } };
  }
  const campaignId = campaignInput.campaignId;
  if (!input.resume) {
    // Written by the workflow, not the client, so it can never land after the final status.
    await callEngine('setCampaignStatus', 'campaign/running', { store: input.store, campaignId, status: 'running' });
  }

  const publish = (lapsDone: number, metrics: Metrics | null, status: string): void => {
    const headline = metrics?.[headlineMetric];
    upsertMemo({
      campaignId,
      lapsDone,
      laps,
      datasetDigest: view.datasetDigest,
      headline: {
        metric: headlineMetric,
        value: typeof headline === 'number' && Number.isFinite(headline) ? headline : null,
      },
      status,
    });
    if (!options.searchAttributes) return;
    const pairs: SearchAttributeUpdatePair[] = [
      { key: SEARCH_ATTRIBUTES.campaignId, value: campaignId },
      { key: SEARCH_ATTRIBUTES.lap, value: lapsDone },
    ];
    if (view.datasetDigest) pairs.push({ key: SEARCH_ATTRIBUTES.datasetDigest, value: view.datasetDigest });
    if (typeof headline === 'number' && Number.isFinite(headline))
      pairs.push({ key: SEARCH_ATTRIBUTES.headline, value: headline });
    upsertSearchAttributes(pairs);
  };

  const host: CampaignHost = {
    call<K extends ActivityName>(name: K, step: string, activityInput: ActivityInput<K>): Promise<ActivityOutput<K>> {
      // The campaign config's runtime.timeouts over the defaults, the start options (CLI flags) over both.
      const timeouts: StepTimeouts = {
        ...DEFAULT_TIMEOUTS[name],
        ...input.config.runtime.timeouts?.[name],
        ...options.timeouts?.[name],
      };
      const queue = queueFor(name, queues);
      const proxy = proxyActivities<CampaignActivities>(activityOptions(name, step, queue, timeouts));
      const fn = proxy[name] as unknown as (i: ActivityInput<K>) => Promise<ActivityOutput<K>>;
      return fn(activityInput);
    },
    progress(event: CampaignProgress): void {
      view.phase = event.phase;
      view.lap = event.lap;
      view.laps = event.laps;
      view.step = event.step;
      if (event.metrics) view.metrics = event.metrics;
    },
    async beforeLap(state: CampaignState): Promise<'continue' | 'stop'> {
      view.datasetDigest = state.data.datasetDigest;
      view.metrics = state.lastMetrics;
      publish(state.nextLap - 1, state.lastMetrics, view.paused ? 'paused' : 'running');
      if (view.paused && !view.stopRequested) {
        await condition(() => !view.paused || view.stopRequested);
        if (!view.stopRequested) publish(state.nextLap - 1, state.lastMetrics, 'running');
      }
      if (view.stopRequested) return 'stop';
      const lapsPerRun = options.lapsPerRun ?? 0;
      if ((lapsPerRun > 0 && view.lapsThisRun >= lapsPerRun) || workflowInfo().continueAsNewSuggested) {
        // Let signal and update handlers finish, or their callers would see the run vanish.
        await condition(allHandlersFinished);
        await continueAsNew<typeof diffemCampaign>({
          ...campaignInput,
          resume: state,
          carried: { paused: view.paused, stopRequested: view.stopRequested, run: view.run + 1 },
        });
      }
      view.lapsThisRun++;
      return 'continue';
    },
  };

  try {
    const summary = await runCampaign(host, campaignInput);
    // A stop that cut the laps short is what `diffem status` must report, not a full run.
    const outcome = view.stopRequested && summary.laps < laps ? 'stopped' : 'done';
    publish(summary.laps, summary.lastMetrics, outcome);
    await callEngine('setCampaignStatus', 'campaign/status', { store: input.store, campaignId, status: outcome });
    await condition(allHandlersFinished);
    return summary;
  } catch (error) {
    // Continue-as-new travels as an exception: it is no failure.
    if (error instanceof ContinueAsNew) throw error;
    // Record the outcome in the store for `diffem status`, even when the workflow was cancelled.
    const cancelled = isCancellation(error);
    const cause = rootCause(error);
    try {
      await CancellationScope.nonCancellable(() =>
        callEngine('setCampaignStatus', 'campaign/status', {
          store: input.store,
          campaignId,
          status: cancelled ? 'stopped' : 'failed',
          error: cause ?? (error instanceof Error ? error.message : String(error)),
          errorType:
            error instanceof ActivityFailure && error.cause instanceof Error
              ? (failureType(error.cause) ?? error.cause.name)
              : undefined,
          step: error instanceof ActivityFailure ? error.activityId : undefined,
        }),
      );
    } catch {
      // The campaign's own failure is what its caller must see, not the status write's.
    }
    throw error;
  }
}

/**
 * Whether no lap boundary is left before the final stage: the lap in flight is the last one
 * (laps run 0..laps). A continued run has not started its lap yet: its boundary is still ahead.
 */
export function inLastLap(view: CampaignProgressView): boolean {
  if (view.step === 'continued') return false;
  return view.lap >= view.laps;
}

function failureType(error: Error): string | undefined {
  return 'type' in error && typeof error.type === 'string' ? error.type : undefined;
}
