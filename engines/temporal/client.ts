/**
 * The Temporal client side of campaigns: start one (after opening its manifest in the store,
 * so `diffem status` and `diffem history` read it like a local campaign), pause / resume /
 * stop it at lap boundaries, query its progress, and schedule periodic campaigns.
 *
 * Every campaign is the workflow `diffem-{campaignId}`. Scheduled runs get their ids from
 * Temporal: a schedule `nightly` starts workflows `diffem-nightly-{scheduled time}` (Temporal
 * appends the time), and the workflow derives its campaign id from that workflow id
 * (`nightly-2025-01-01T03-00-00Z`), so every run writes to its own place in the store.
 */
import {
  Client,
  Connection,
  ScheduleOverlapPolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdReusePolicy,
  type Duration,
  type SearchAttributePair,
} from '@temporalio/common';
import { storeFor } from '../../store/open.js';
import { loadConfigFile, parseConfigText } from '../config-file.js';
import { inputDigest, openCampaign, validateCampaignId } from '../records.js';
import { resolveParent } from '../lineage.js';
import { parseCampaignConfig, type CampaignConfig } from '../../workflows/config.js';
import type { CampaignSummary } from '../../workflows/types.js';
import {
  campaignIdFromWorkflowId,
  controlUpdate,
  DEFAULT_QUEUES,
  pauseSignal,
  progressQuery,
  resumeSignal,
  SEARCH_ATTRIBUTES,
  stopSignal,
  WORKFLOW_TYPE,
  type CampaignProgressView,
  type ControlAction,
  type diffemCampaign,
  type TemporalCampaignInput,
  type TemporalCampaignOptions,
} from '../../workflows/temporal.js';
import { connectionSettings, describeConnection, type TemporalTarget as ConnectionTarget } from './connection.js';

export interface TemporalTarget extends ConnectionTarget {
  /** How long to wait for the server before giving up (default 10 s). */
  connectTimeout?: Duration;
}

export function workflowIdFor(campaignId: string): string {
  return `diffem-${campaignId}`;
}

/**
 * The workflow ids an id given on the command line may name, most likely first: the campaign's
 * own workflow (`diffem-ID`); a workflow id pasted as is (`schedule list` shows them); and a
 * scheduled run's campaign id, whose workflow id keeps the colons of the time Temporal appended
 * (`nightly-2025-01-01T03-00-00Z` runs as `diffem-nightly-2025-01-01T03:00:00Z`).
 */
export function candidateWorkflowIds(id: string): string[] {
  const ids = [workflowIdFor(id)];
  if (id.startsWith('diffem-')) ids.push(id);
  const scheduled = id.replace(/(\d{4}-\d{2}-\d{2}T\d{2})-(\d{2})-(\d{2}(?:\.\d+)?Z)$/, '$1:$2:$3');
  if (scheduled !== id) ids.push(workflowIdFor(scheduled));
  return ids;
}

/** The workflow of a campaign, by campaign id or workflow id; a clear error when none exists. */
async function resolveWorkflowId(client: Client, id: string): Promise<string> {
  const candidates = candidateWorkflowIds(id);
  for (const workflowId of candidates) {
    try {
      await client.workflow.getHandle(workflowId).describe();
      return workflowId;
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
    }
  }
  throw new Error(`no campaign '${id}' on the Temporal server (looked for workflow ${candidates.join(', ')})`);
}

/** What a failed call against the server means, naming the address the user can fix. */
export class TemporalUnavailableError extends Error {
  constructor(
    readonly address: string,
    cause: unknown,
  ) {
    super(
      `cannot reach the Temporal server at ${address}: ${cause instanceof Error ? cause.message : String(cause)} ` +
        `(is it running? set --address or TEMPORAL_ADDRESS)`,
      { cause },
    );
  }
}

/** gRPC status code carried by an error or one of its causes (14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, ...). */
function grpcCode(error: unknown): number | undefined {
  for (
    let e: unknown = error, depth = 0;
    e && typeof e === 'object' && depth < 5;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;
const PERMISSION_DENIED = 7;
const UNIMPLEMENTED = 12;

/** Opens a client, runs `fn`, closes the connection; unreachable servers give TemporalUnavailableError. */
export async function withClient<T>(
  target: TemporalTarget,
  fn: (client: Client, namespace: string) => Promise<T>,
): Promise<T> {
  const settings = connectionSettings(target);
  const { address, namespace } = settings;
  let connection: Connection;
  try {
    connection = await Connection.connect({
      address,
      connectTimeout: target.connectTimeout ?? '10s',
      ...(settings.tls && { tls: settings.tls }),
      ...(settings.apiKey && { apiKey: settings.apiKey }),
    });
  } catch (error) {
    throw new TemporalUnavailableError(address, error);
  }
  try {
    return await fn(new Client({ connection, namespace }), namespace);
  } catch (error) {
    const code = grpcCode(error);
    if (code === UNAVAILABLE || code === DEADLINE_EXCEEDED) throw new TemporalUnavailableError(address, error);
    throw error;
  } finally {
    await connection.close();
  }
}

export interface StartCampaignOptions extends TemporalTarget {
  store: string;
  campaignId: string;
  config: CampaignConfig;
  /** Wait for the campaign to finish and return its summary. */
  wait?: boolean;
  options?: TemporalCampaignOptions;
}

export interface StartedCampaign {
  workflowId: string;
  runId: string;
  store: string;
  summary?: CampaignSummary;
}

/** Opens the campaign in the store and starts its workflow. */
export async function startCampaign(options: StartCampaignOptions): Promise<StartedCampaign> {
  validateCampaignId(options.campaignId);
  const store = storeFor(options.store);
  const manifest = await openCampaign(store, options.campaignId, options.config, 'temporal');
  if (manifest.engine !== 'temporal') {
    throw new Error(
      `campaign '${options.campaignId}' in ${store.uri} was started by the ${manifest.engine} engine; ` +
        `resume it with \`diffem resume ${options.campaignId}\` or pick a new --id`,
    );
  }
  const campaignOptions = options.options ?? {};
  // A warm start (config init.from): the parent's model is resolved here, outside the workflow.
  const parent = await resolveParent(store, options.config);
  const input: TemporalCampaignInput = {
    // Workers may run elsewhere: hand them the absolute store URI, never a relative path.
    store: store.uri,
    campaignId: options.campaignId,
    config: options.config,
    ...(parent && { parent }),
    ...(options.options && { options: campaignOptions }),
  };
  const workflowId = workflowIdFor(options.campaignId);
  return withClient(options, async (client) => {
    let handle: WorkflowHandleWithFirstExecutionRunId<typeof diffemCampaign>;
    try {
      handle = await client.workflow.start<typeof diffemCampaign>(WORKFLOW_TYPE, {
        taskQueue: campaignOptions.queues?.cpu ?? DEFAULT_QUEUES.cpu,
        workflowId,
        args: [input],
        // A failed, cancelled or terminated campaign may be started again under its id (finished
        // steps are cheap to redo: activities are idempotent and training resumes from its
        // checkpoint); a completed one may not.
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        memo: { campaignId: options.campaignId, store: store.uri, configDigest: manifest.configDigest },
        ...(campaignOptions.searchAttributes && {
          typedSearchAttributes: [
            { key: SEARCH_ATTRIBUTES.campaignId, value: options.campaignId },
          ] satisfies SearchAttributePair[],
        }),
        staticSummary: `DiffEM campaign ${options.campaignId} (${options.config.method}, ${options.config.em.laps} laps)`,
      });
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) {
        throw new Error(
          `workflow ${workflowId} already exists: the campaign is running (see \`diffem progress ${options.campaignId}\`) ` +
            `or has completed (a completed campaign is not run again: pick a new --id)`,
          { cause: error },
        );
      }
      throw error;
    }
    const started: StartedCampaign = { workflowId, runId: handle.firstExecutionRunId, store: store.uri };
    if (options.wait) started.summary = await handle.result();
    return started;
  });
}

/** `diffem run --engine temporal`: starts the campaign and says how to follow it. */
export async function startTemporalCampaign(options: StartCampaignOptions): Promise<void> {
  const started = await startCampaign(options);
  const id = options.campaignId;
  process.stdout.write(
    `campaign ${id} started on Temporal at ${describeConnection(connectionSettings(options))}\n` +
      `  workflow: ${started.workflowId} (run ${started.runId})\n` +
      `  store:    ${started.store}\n` +
      (started.summary ? `  finished: ${started.summary.laps} laps\n` : '') +
      `  follow:   diffem progress ${id}   |   diffem history ${id} --store ${options.store}\n` +
      `  control:  diffem pause ${id}   diffem unpause ${id}   diffem stop ${id}\n` +
      `  (workers: diffem worker --queue diffem-cpu  and  diffem worker --queue diffem-gpu)\n`,
  );
}

/**
 * Sends a control through the `control` update (the caller learns the new state, and a
 * rejected control fails here with the reason); servers with updates disabled get the
 * matching signal instead, followed by a progress query.
 */
async function control(
  campaignId: string,
  action: ControlAction,
  target: TemporalTarget,
): Promise<CampaignProgressView> {
  return withClient(target, async (client) => {
    const handle = client.workflow.getHandle(await resolveWorkflowId(client, campaignId));
    try {
      return await handle.executeUpdate(controlUpdate, { args: [action] });
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError) {
        throw new Error(
          `${action} of campaign ${campaignId} was rejected: ${error.cause instanceof Error ? error.cause.message : error.message}`,
          { cause: error },
        );
      }
      const code = grpcCode(error);
      if (code !== UNIMPLEMENTED && code !== PERMISSION_DENIED) throw error;
      const signal = action === 'pause' ? pauseSignal : action === 'resume' ? resumeSignal : stopSignal;
      await handle.signal(signal);
      return handle.query(progressQuery);
    }
  });
}

/** Holds the campaign before its next lap; the lap in flight finishes. */
export function pauseCampaign(campaignId: string, target: TemporalTarget = {}): Promise<CampaignProgressView> {
  return control(campaignId, 'pause', target);
}

export function resumeCampaign(campaignId: string, target: TemporalTarget = {}): Promise<CampaignProgressView> {
  return control(campaignId, 'resume', target);
}

/** Ends the EM laps at the next lap boundary; the campaign then runs its final stage. */
export function stopCampaign(campaignId: string, target: TemporalTarget = {}): Promise<CampaignProgressView> {
  return control(campaignId, 'stop', target);
}

export function queryProgress(campaignId: string, target: TemporalTarget = {}): Promise<CampaignProgressView> {
  return withClient(target, async (client) =>
    client.workflow.getHandle(await resolveWorkflowId(client, campaignId)).query(progressQuery),
  );
}

// ---------------------------------------------------------------------------------------------
// Schedules: periodic campaigns (e.g. nightly retraining on a refreshed dataset).

export interface CreateScheduleOptions extends TemporalTarget {
  scheduleId: string;
  /** A cron expression ('0 3 * * *'), or ... */
  cron?: string;
  /** ... an interval ('24h', '30m'). */
  interval?: string;
  /** The campaign config: a parsed document, YAML / JSON text, or a file to read. */
  config?: CampaignConfig;
  configText?: string;
  configPath?: string;
  store: string;
  paused?: boolean;
  note?: string;
  options?: TemporalCampaignOptions;
}

async function scheduleConfig(options: CreateScheduleOptions): Promise<CampaignConfig> {
  const given = [options.config, options.configText, options.configPath].filter((c) => c !== undefined).length;
  if (given !== 1) throw new Error('a schedule needs exactly one of: config, configText, configPath');
  if (options.config) return parseCampaignConfig(options.config, `schedule ${options.scheduleId}`);
  if (options.configPath !== undefined) return loadConfigFile(options.configPath);
  return parseConfigText(options.configText ?? '', `schedule ${options.scheduleId}`);
}

export async function createSchedule(options: CreateScheduleOptions): Promise<{ scheduleId: string }> {
  validateCampaignId(options.scheduleId);
  if ((options.cron === undefined) === (options.interval === undefined))
    throw new Error('a schedule needs exactly one of: cron, interval');
  const config = await scheduleConfig(options);
  const store = storeFor(options.store);
  const input: TemporalCampaignInput = {
    store: store.uri,
    // Replaced in each run by an id derived from the run's workflow id (see the file comment).
    campaignId: options.scheduleId,
    config,
    options: { ...options.options, campaignIdFromWorkflowId: true },
  };
  const specText = options.cron ?? `every ${options.interval}`;
  return withClient(options, async (client) => {
    await client.schedule.create({
      scheduleId: options.scheduleId,
      spec:
        options.cron !== undefined
          ? { cronExpressions: [options.cron] }
          : { intervals: [{ every: options.interval as string }] },
      action: {
        type: 'startWorkflow',
        workflowType: WORKFLOW_TYPE,
        workflowId: workflowIdFor(options.scheduleId),
        taskQueue: options.options?.queues?.cpu ?? DEFAULT_QUEUES.cpu,
        args: [input],
      },
      policies: {
        // A campaign still running when the next one is due: skip the new one, never stack them.
        overlap: ScheduleOverlapPolicy.SKIP,
        // After an outage, run a missed action only if it is less than a day late.
        catchupWindow: '1d',
      },
      memo: { spec: specText, store: store.uri, configDigest: inputDigest({ config }) },
      state: { paused: options.paused ?? false, note: options.note ?? `created by diffem (${specText})` },
    });
    return { scheduleId: options.scheduleId };
  });
}

export interface ScheduleRow {
  scheduleId: string;
  spec: string;
  paused: boolean;
  note?: string;
  nextRuns: string[];
  /** campaignId: what `diffem progress|pause|stop|status` take for that run. */
  recentRuns: Array<{ scheduledAt: string; workflowId: string; campaignId: string }>;
}

/** The schedules that start campaigns (others on the namespace are left out). */
export async function listSchedules(target: TemporalTarget = {}): Promise<ScheduleRow[]> {
  return withClient(target, async (client) => {
    const rows: ScheduleRow[] = [];
    for await (const s of client.schedule.list()) {
      if (s.action?.workflowType !== WORKFLOW_TYPE) continue;
      rows.push({
        scheduleId: s.scheduleId,
        spec: typeof s.memo?.spec === 'string' ? s.memo.spec : '?',
        paused: s.state.paused,
        ...(s.state.note && { note: s.state.note }),
        nextRuns: s.info.nextActionTimes.map((d) => d.toISOString()),
        recentRuns: s.info.recentActions.map((a) => ({
          scheduledAt: a.scheduledAt.toISOString(),
          workflowId: a.action.workflow.workflowId,
          campaignId: campaignIdFromWorkflowId(a.action.workflow.workflowId),
        })),
      });
    }
    return rows;
  });
}

export function pauseSchedule(scheduleId: string, note?: string, target: TemporalTarget = {}): Promise<void> {
  return withClient(target, (client) => client.schedule.getHandle(scheduleId).pause(note));
}

export function unpauseSchedule(scheduleId: string, note?: string, target: TemporalTarget = {}): Promise<void> {
  return withClient(target, (client) => client.schedule.getHandle(scheduleId).unpause(note));
}

/** Starts a run now; with the schedule's SKIP policy it is skipped while a run is in progress. */
export function triggerSchedule(scheduleId: string, target: TemporalTarget = {}): Promise<void> {
  // The SDK's trigger defaults to ALLOW_ALL, which would start a second campaign beside a running one.
  return withClient(target, (client) => client.schedule.getHandle(scheduleId).trigger(ScheduleOverlapPolicy.SKIP));
}

/** Deletes the schedule; campaigns it started keep running. */
export function deleteSchedule(scheduleId: string, target: TemporalTarget = {}): Promise<void> {
  return withClient(target, (client) => client.schedule.getHandle(scheduleId).delete());
}
