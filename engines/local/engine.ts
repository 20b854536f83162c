/**
 * The embedded engine: runs the campaign definition in this process, with no services.
 *
 * Durable execution by memoisation (the model of Temporal's replay, without a server):
 * every `host.call(activity, stepId, input)` first reads the step's journal record; a
 * `done` record returns the stored output, so after a crash (even `kill -9`) re-running the
 * definition from the top skips straight through finished work and resumes at the first
 * unfinished step. Activities are idempotent and draw from seed-derived streams, so the
 * resumed campaign writes the same bytes an uninterrupted one would have.
 *
 * Transient failures are retried with exponential backoff; a non-retryable failure (bad
 * input) stops the campaign with the step marked `failed`, and nothing finished is lost.
 */
import { hostname } from 'node:os';
import { createActivities } from '../../activities/index.js';
import { errorType, isNonRetryable } from '../../activities/errors.js';
import { runInActivityContext } from '../../activities/context.js';
import { storeFor } from '../../store/open.js';
import type { ArtifactStore } from '../../store/store.js';
import { resolveParent } from '../lineage.js';
import { redactSecrets } from '../../store/secrets.js';
import { runCampaign, type CampaignHost, type CampaignState } from '../../workflows/campaign.js';
import type { CampaignConfig } from '../../workflows/config.js';
import type {
  ActivityInput,
  ActivityName,
  ActivityOutput,
  CampaignActivities,
  CampaignSummary,
} from '../../workflows/types.js';
import {
  acquireCampaign,
  canonicalJson,
  inputDigest,
  openCampaign,
  ProgressRecorder,
  readControl,
  readStep,
  writeStatus,
  writeStep,
  type CampaignControl,
  type StepRecord,
} from '../records.js';
import { silentProgress, type ProgressSink } from './progress.js';

export interface LocalRunOptions {
  store: string;
  campaignId: string;
  config: CampaignConfig;
  progress?: ProgressSink;
  /** Attempts per step before the campaign fails (default 3). */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt (default 1 s). */
  retryDelayMs?: number;
  /** Replaces the real activities (tests). */
  activities?: CampaignActivities;
  /**
   * Aborted (by SIGTERM or Ctrl-C in the CLI) to stop the campaign: running steps are
   * cancelled at their next heartbeat or checkpoint, no new step starts, writes already under
   * way complete, and the campaign's status records where it stopped.
   */
  stop?: AbortSignal;
}

export class CampaignFailedError extends Error {
  constructor(
    message: string,
    readonly step: string,
    readonly type: string,
  ) {
    super(message);
  }
}

/** The campaign was asked to stop (see LocalRunOptions.stop); `resume` continues it. */
export class CampaignStoppedError extends Error {
  readonly type = 'CampaignStopped' as const;
  override readonly name = 'CampaignStoppedError';
  constructor(
    readonly step: string,
    readonly reason: string,
  ) {
    super(`stopped by ${reason} at step ${step}`);
  }
}

function stopReason(signal: AbortSignal): string {
  return typeof signal.reason === 'string' ? signal.reason : 'request';
}

export async function runLocalCampaign(options: LocalRunOptions): Promise<CampaignSummary> {
  const store = storeFor(options.store);
  const { campaignId, config } = options;
  await openCampaign(store, campaignId, config, 'local');
  const progress = options.progress ?? silentProgress;
  const activities = options.activities ?? createActivities();
  const maxAttempts = options.maxAttempts ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  await acquireCampaign(store, campaignId);

  const host = localHost(store, campaignId, activities, { progress, maxAttempts, retryDelayMs, stop: options.stop });
  try {
    const parent = await resolveParent(store, config);
    const summary = await runCampaign(host, { store: store.uri, campaignId, config, ...(parent && { parent }) });
    await writeStatus(store, campaignId, { status: summary.laps < config.em.laps ? 'stopped' : 'done' });
    return summary;
  } catch (error) {
    const step = error instanceof CampaignFailedError || error instanceof CampaignStoppedError ? error.step : undefined;
    // The status is best effort: when the store itself fails (a full disk), the store's error
    // is the one to report, and a status left 'running' by a process that is gone is taken over.
    await writeStatus(store, campaignId, {
      status: error instanceof CampaignStoppedError ? 'stopped' : 'failed',
      error: error instanceof Error ? error.message : String(error),
      errorType: errorType(error),
      step,
    }).catch(() => undefined);
    throw error;
  }
}

export interface CallOptions {
  progress: ProgressSink;
  maxAttempts: number;
  retryDelayMs: number;
  stop?: AbortSignal;
}

/** The host the definition runs against: every call memoised in the journal. */
export function localHost(
  store: ArtifactStore,
  campaignId: string,
  activities: CampaignActivities,
  options: CallOptions,
): CampaignHost {
  const progress = new ProgressRecorder(store, campaignId);
  const sink: ProgressSink = {
    campaign: (event) => options.progress.campaign(event),
    stepStarted: (step, activity, attempt) => options.progress.stepStarted(step, activity, attempt),
    stepFinished: (step, seconds, reused) => {
      options.progress.stepFinished(step, seconds, reused);
      progress.reset();
    },
    stepFailed: (step, error, willRetry) => options.progress.stepFailed(step, error, willRetry),
    heartbeat: (step, details) => {
      options.progress.heartbeat(step, details);
      progress.update(step, details);
    },
    notice: (message) => options.progress.notice(message),
  };
  return {
    call: <K extends ActivityName>(name: K, step: string, input: ActivityInput<K>) =>
      callStep(store, campaignId, activities, name, step, input, { ...options, progress: sink }),
    progress: (event) => options.progress.campaign(event),
    beforeLap: async (state: CampaignState) => {
      const control = await holdWhilePaused(store, campaignId, sink, options.stop);
      if (!control.stopRequested) return 'continue';
      sink.notice(
        `stopped before lap ${state.nextLap} as asked: the final stage runs on the ${state.nextLap - 1} laps done`,
      );
      return 'stop';
    },
  };
}

const PAUSE_POLL_MS = 1000;

/**
 * Waits while the campaign's control record says paused (a stop request ends the wait, so a
 * paused campaign can be stopped). The status says `paused` meanwhile, keeping the lock's pid.
 */
async function holdWhilePaused(
  store: ArtifactStore,
  campaignId: string,
  sink: ProgressSink,
  stop?: AbortSignal,
): Promise<CampaignControl> {
  let control = await readControl(store, campaignId);
  if (!control.paused || control.stopRequested) return control;
  sink.notice(`paused; \`diffem unpause ${campaignId} --store ${store.uri}\` continues it`);
  await writeStatus(store, campaignId, { status: 'paused', pid: process.pid, host: hostname() });
  while (control.paused && !control.stopRequested && !stop?.aborted) {
    await new Promise((resolve) => setTimeout(resolve, PAUSE_POLL_MS));
    control = await readControl(store, campaignId);
  }
  sink.notice(control.stopRequested ? 'stop requested while paused' : 'unpaused');
  await writeStatus(store, campaignId, { status: 'running', pid: process.pid, host: hostname() });
  return control;
}

async function callStep<K extends ActivityName>(
  store: ArtifactStore,
  campaignId: string,
  activities: CampaignActivities,
  name: K,
  step: string,
  input: ActivityInput<K>,
  options: CallOptions,
): Promise<ActivityOutput<K>> {
  const digest = inputDigest(input);
  let record: StepRecord | null = await readStep(store, campaignId, step);
  if (record && record.inputDigest !== digest) {
    throw new CampaignFailedError(
      `step ${step} was recorded with other inputs (the campaign's definition or data changed); start a new campaign id`,
      step,
      'NonDeterminism',
    );
  }
  if (record?.status === 'done') {
    options.progress.stepFinished(step, 0, true);
    return record.output as ActivityOutput<K>;
  }
  await holdWhilePaused(store, campaignId, options.progress, options.stop);
  if (options.stop?.aborted) throw new CampaignStoppedError(step, stopReason(options.stop));
  record ??= { step, activity: name, inputDigest: digest, status: 'running', executions: [] };
  for (const execution of record.executions) if (execution.outcome === 'running') execution.outcome = 'interrupted';

  for (;;) {
    const attempt = record.executions.length + 1;
    const execution: StepRecord['executions'][number] = {
      attempt,
      startedAt: new Date().toISOString(),
      outcome: 'running',
    };
    record.executions.push(execution);
    record.status = 'running';
    await writeStep(store, campaignId, record);
    options.progress.stepStarted(step, name, attempt);
    const previous = [...record.executions].reverse().find((e) => e !== execution && e.heartbeat !== undefined);
    const started = performance.now();
    const controller = new AbortController();
    const cancel = () => controller.abort(new CampaignStoppedError(step, stopReason(options.stop as AbortSignal)));
    options.stop?.addEventListener('abort', cancel, { once: true });
    try {
      const run = activities[name] as (i: ActivityInput<K>) => Promise<ActivityOutput<K>>;
      const output = await runInActivityContext(
        {
          attempt,
          heartbeatDetails: previous?.heartbeat,
          heartbeat: (details) => {
            execution.heartbeat = details;
            options.progress.heartbeat(step, details);
          },
          signal: controller.signal,
        },
        () => run(input),
      );
      // Round-trip through JSON now, so a resumed run sees exactly what a first run saw.
      const stored = JSON.parse(canonicalJson(output)) as ActivityOutput<K>;
      execution.outcome = 'done';
      execution.endedAt = new Date().toISOString();
      record.status = 'done';
      record.output = stored;
      await writeStep(store, campaignId, record);
      options.progress.stepFinished(step, (performance.now() - started) / 1000, false);
      return stored;
    } catch (error) {
      if (options.stop?.aborted) {
        // Not a failure: the attempt is recorded as interrupted, with its last heartbeat, so
        // `resume` picks it up from its last checkpoint.
        execution.outcome = 'interrupted';
        execution.endedAt = new Date().toISOString();
        await writeStep(store, campaignId, record);
        throw new CampaignStoppedError(step, stopReason(options.stop));
      }
      const message = redactSecrets(error instanceof Error ? error.message : String(error));
      const fatal = isNonRetryable(error) || attempt >= options.maxAttempts;
      execution.outcome = 'failed';
      execution.endedAt = new Date().toISOString();
      execution.error = message;
      execution.errorType = errorType(error);
      record.status = fatal ? 'failed' : 'running';
      await writeStep(store, campaignId, record);
      options.progress.stepFailed(step, message, !fatal);
      if (fatal)
        throw new CampaignFailedError(
          `step ${step} (${name}) failed after ${attempt} attempt(s): ${message}`,
          step,
          errorType(error),
        );
      await new Promise((resolve) => setTimeout(resolve, options.retryDelayMs * 2 ** (attempt - 1)));
      if (options.stop?.aborted) throw new CampaignStoppedError(step, stopReason(options.stop));
    } finally {
      options.stop?.removeEventListener('abort', cancel);
    }
  }
}
