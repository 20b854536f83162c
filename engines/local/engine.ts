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
import { campaignKey, storeFor } from '../../activities/io.js';
import { errorType, isNonRetryable } from '../../activities/errors.js';
import { runInActivityContext } from '../../activities/context.js';
import { getJson, putJson, type ArtifactStore } from '../../activities/store/store.js';
import { runCampaign, type CampaignHost, type CampaignState } from '../../workflows/campaign.js';
import type { CampaignConfig } from '../../workflows/config.js';
import type {
  ActivityInput,
  ActivityName,
  ActivityOutput,
  CampaignActivities,
  CampaignSummary,
} from '../../workflows/types.js';
import { canonicalJson, inputDigest, readStep, writeStep, type StepRecord } from './journal.js';
import { silentProgress, type ProgressSink } from './progress.js';

export interface CampaignManifest {
  campaignId: string;
  engine: 'local' | 'temporal';
  config: CampaignConfig;
  configDigest: string;
  createdAt: string;
}

export interface CampaignStatus {
  status: 'running' | 'done' | 'failed' | 'stopped';
  updatedAt: string;
  pid?: number;
  host?: string;
  error?: string;
  errorType?: string;
  step?: string;
}

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

export function manifestKey(campaignId: string): string {
  return campaignKey(campaignId, 'campaign.json');
}

export function statusKey(campaignId: string): string {
  return campaignKey(campaignId, 'status.json');
}

const CAMPAIGN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function validateCampaignId(id: string): string {
  if (!CAMPAIGN_ID.test(id)) {
    throw new Error(
      `campaign id '${id}' is invalid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return id;
}

/** Creates the campaign's manifest, or checks that an existing one has the same config. */
export async function openCampaign(
  store: ArtifactStore,
  campaignId: string,
  config: CampaignConfig,
  engine: 'local' | 'temporal',
): Promise<CampaignManifest> {
  validateCampaignId(campaignId);
  const key = manifestKey(campaignId);
  const digest = inputDigest({ config });
  if (await store.exists(key)) {
    const manifest = await getJson<CampaignManifest>(store, key);
    if (manifest.configDigest !== digest) {
      throw new Error(
        `campaign '${campaignId}' already exists in ${store.uri} with a different config; ` +
          `resume it with \`diffem resume ${campaignId}\` or pick a new --id`,
      );
    }
    return manifest;
  }
  const manifest: CampaignManifest = {
    campaignId,
    engine,
    config,
    configDigest: digest,
    createdAt: new Date().toISOString(),
  };
  await putJson(store, key, manifest);
  return manifest;
}

export async function runLocalCampaign(options: LocalRunOptions): Promise<CampaignSummary> {
  const store = storeFor(options.store);
  const { campaignId, config } = options;
  await openCampaign(store, campaignId, config, 'local');
  const progress = options.progress ?? silentProgress;
  const activities = options.activities ?? createActivities();
  const maxAttempts = options.maxAttempts ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const setStatus = (status: CampaignStatus) => putJson(store, statusKey(campaignId), status);
  await refuseIfRunningElsewhere(store, campaignId);
  await setStatus({ status: 'running', updatedAt: new Date().toISOString(), pid: process.pid, host: hostname() });

  const host = localHost(store, campaignId, activities, { progress, maxAttempts, retryDelayMs });
  try {
    const summary = await runCampaign(host, { store: store.uri, campaignId, config });
    await setStatus({ status: 'done', updatedAt: new Date().toISOString() });
    return summary;
  } catch (error) {
    const step = error instanceof CampaignFailedError ? error.step : undefined;
    await setStatus({
      status: 'failed',
      updatedAt: new Date().toISOString(),
      error: error instanceof Error ? error.message : String(error),
      errorType: errorType(error),
      step,
    });
    throw error;
  }
}

/** Two processes driving one campaign would race on its journal: refuse the second. */
async function refuseIfRunningElsewhere(store: ArtifactStore, campaignId: string): Promise<void> {
  if (!(await store.exists(statusKey(campaignId)))) return;
  const status = await getJson<CampaignStatus>(store, statusKey(campaignId));
  if (status.status !== 'running' || !status.pid || status.pid === process.pid || status.host !== hostname()) return;
  try {
    process.kill(status.pid, 0);
  } catch {
    return; // that process is gone: it crashed, and this run resumes its campaign
  }
  throw new Error(
    `campaign '${campaignId}' is being run by process ${status.pid} on this machine; wait for it or stop it first`,
  );
}

export interface CallOptions {
  progress: ProgressSink;
  maxAttempts: number;
  retryDelayMs: number;
}

/** The host the definition runs against: every call memoised in the journal. */
export function localHost(
  store: ArtifactStore,
  campaignId: string,
  activities: CampaignActivities,
  options: CallOptions,
): CampaignHost {
  const progress = new ProgressFile(store, campaignId);
  const sink: ProgressSink = {
    campaign: (event) => options.progress.campaign(event),
    stepStarted: (step, activity, attempt) => options.progress.stepStarted(step, activity, attempt),
    stepFinished: (step, seconds, reused) => {
      options.progress.stepFinished(step, seconds, reused);
      progress.clear(step);
    },
    stepFailed: (step, error, willRetry) => options.progress.stepFailed(step, error, willRetry),
    heartbeat: (step, details) => {
      options.progress.heartbeat(step, details);
      progress.update(step, details);
    },
  };
  return {
    call: <K extends ActivityName>(name: K, step: string, input: ActivityInput<K>) =>
      callStep(store, campaignId, activities, name, step, input, { ...options, progress: sink }),
    progress: (event) => options.progress.campaign(event),
    beforeLap: async (_state: CampaignState) => 'continue',
  };
}

export interface RunningStep {
  step: string;
  details: unknown;
  updatedAt: string;
}

export function progressKey(campaignId: string): string {
  return campaignKey(campaignId, 'progress.json');
}

/**
 * The running step's last heartbeat, persisted at most every 2 s, so `diffem status` in
 * another terminal can draw its progress bar.
 */
class ProgressFile {
  private last = 0;
  private writing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: ArtifactStore,
    private readonly campaignId: string,
  ) {}

  update(step: string, details: unknown): void {
    const now = Date.now();
    if (now - this.last < 2000) return;
    this.last = now;
    const running: RunningStep = { step, details, updatedAt: new Date(now).toISOString() };
    this.writing = this.writing
      .then(() => putJson(this.store, progressKey(this.campaignId), running))
      .catch(() => undefined);
  }

  clear(_step: string): void {
    this.last = 0;
  }
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
      const message = error instanceof Error ? error.message : String(error);
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
    }
  }
}
