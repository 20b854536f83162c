/**
 * A campaign's records in the store, read and written the same way by both engines and the
 * CLI: its manifest (id, engine, config), its status, the running step's progress, the step
 * journal, the lap records and the summary, and the lock that keeps a second process off a
 * running campaign. The key layout itself is `workflows/keys.ts`.
 *
 * Every record is one JSON object written atomically by the store, so a reader sees the old
 * record or the new one, never a mix.
 */
import { hostname } from 'node:os';
import { putJson, sha256Hex, type ArtifactStore } from '../store/store.js';
import { redactSecrets } from '../store/secrets.js';
import type { CampaignConfig } from '../workflows/config.js';
import { campaignKeys } from '../workflows/keys.js';
import type { CampaignSummary, LapRecord } from '../workflows/types.js';
import {
  controlSchema,
  getRecord,
  lapRecordSchema,
  manifestSchema,
  runningStepSchema,
  statusSchema,
  stepRecordSchema,
  summarySchema,
} from './record-schemas.js';
import type { z } from 'zod';

export interface CampaignManifest {
  campaignId: string;
  engine: 'local' | 'temporal';
  config: CampaignConfig;
  configDigest: string;
  createdAt: string;
}

export interface CampaignStatus {
  status: 'running' | 'paused' | 'done' | 'failed' | 'stopped';
  updatedAt: string;
  pid?: number;
  host?: string;
  error?: string;
  errorType?: string;
  step?: string;
}

/**
 * What a user asked of a campaign on the embedded engine (`diffem pause|unpause|stop ID
 * --store URI`). The engine reads it before every step: paused, it waits before the next
 * step; asked to stop, it ends after the lap in progress and runs the final stage on the laps
 * done (as Temporal's stop does).
 */
export interface CampaignControl {
  paused: boolean;
  stopRequested: boolean;
  updatedAt: string;
}

/** The running step's last heartbeat. */
export interface RunningStep {
  step: string;
  details: unknown;
  updatedAt: string;
}

/** One attempt of a journalled step. */
export interface Execution {
  attempt: number;
  startedAt: string;
  endedAt?: string;
  outcome: 'running' | 'done' | 'failed' | 'interrupted';
  error?: string;
  errorType?: string;
  /** The last heartbeat's details, handed to the next attempt to resume from. */
  heartbeat?: unknown;
}

/**
 * The embedded engine's journal record of one step: written before the step starts and after
 * it ends. A `done` record's output is returned instead of running the step again; a record
 * left `running` by a killed process counts as an interrupted attempt.
 */
export interface StepRecord {
  step: string;
  activity: string;
  inputDigest: string;
  status: 'running' | 'done' | 'failed';
  executions: Execution[];
  output?: unknown;
}

const CAMPAIGN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function validateCampaignId(id: string): string {
  if (typeof id !== 'string' || !CAMPAIGN_ID.test(id)) {
    throw new Error(
      `campaign id ${JSON.stringify(id.length > 140 ? `${id.slice(0, 140)}…` : id)} is invalid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return id;
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Digest of an activity input, without the store's address (a moved store is the same campaign). */
export function inputDigest(input: object): string {
  const { store: _store, ...rest } = input as Record<string, unknown>;
  return sha256Hex(new TextEncoder().encode(canonicalJson(rest)));
}

async function readOptional<T>(store: ArtifactStore, key: string, schema: z.ZodType): Promise<T | null> {
  return (await store.exists(key)) ? getRecord<T>(store, key, schema) : null;
}

/** Creates the campaign's manifest, or checks that an existing one has the same config. */
export async function openCampaign(
  store: ArtifactStore,
  campaignId: string,
  config: CampaignConfig,
  engine: 'local' | 'temporal',
): Promise<CampaignManifest> {
  validateCampaignId(campaignId);
  const key = campaignKeys.manifest(campaignId);
  const digest = inputDigest({ config });
  const existing = await readOptional<CampaignManifest>(store, key, manifestSchema);
  if (existing) {
    if (existing.configDigest !== digest) {
      throw new Error(
        `campaign '${campaignId}' already exists in ${store.uri} with a different config; ` +
          `resume it with \`diffem resume ${campaignId}\` or pick a new --id`,
      );
    }
    return existing;
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

export async function readManifest(store: ArtifactStore, campaignId: string): Promise<CampaignManifest | null> {
  validateCampaignId(campaignId);
  return readOptional(store, campaignKeys.manifest(campaignId), manifestSchema);
}

export async function requireCampaign(store: ArtifactStore, campaignId: string): Promise<CampaignManifest> {
  const manifest = await readManifest(store, campaignId);
  if (!manifest) throw new Error(`no campaign '${campaignId}' in ${store.uri}`);
  return manifest;
}

export function readStatus(store: ArtifactStore, campaignId: string): Promise<CampaignStatus | null> {
  return readOptional(store, campaignKeys.status(campaignId), statusSchema);
}

export async function writeStatus(
  store: ArtifactStore,
  campaignId: string,
  status: Omit<CampaignStatus, 'updatedAt'>,
): Promise<void> {
  const error = status.error === undefined ? undefined : redactSecrets(status.error);
  await putJson(store, campaignKeys.status(campaignId), { ...status, error, updatedAt: new Date().toISOString() });
}

export async function readControl(store: ArtifactStore, campaignId: string): Promise<CampaignControl> {
  return (
    (await readOptional<CampaignControl>(store, campaignKeys.control(campaignId), controlSchema)) ?? {
      paused: false,
      stopRequested: false,
      updatedAt: '',
    }
  );
}

/** Applies a pause, unpause or stop request; returns the control as now stored. */
export async function requestControl(
  store: ArtifactStore,
  campaignId: string,
  action: 'pause' | 'unpause' | 'stop',
): Promise<CampaignControl> {
  const current = await readControl(store, campaignId);
  const control: CampaignControl = {
    paused: action === 'pause' ? true : action === 'unpause' ? false : current.paused,
    stopRequested: current.stopRequested || action === 'stop',
    updatedAt: new Date().toISOString(),
  };
  await putJson(store, campaignKeys.control(campaignId), control);
  return control;
}

export function readSummary(store: ArtifactStore, campaignId: string): Promise<CampaignSummary | null> {
  return readOptional(store, campaignKeys.summary(campaignId), summarySchema);
}

export function readRunningStep(store: ArtifactStore, campaignId: string): Promise<RunningStep | null> {
  return readOptional(store, campaignKeys.progress(campaignId), runningStepSchema);
}

export async function readLapRecords(store: ArtifactStore, campaignId: string): Promise<LapRecord[]> {
  const keys = (await store.list(campaignKeys.lapRecordsPrefix(campaignId))).filter((k) => k.endsWith('.json'));
  const records = await Promise.all(keys.map((k) => getRecord<LapRecord>(store, k, lapRecordSchema)));
  return records.sort((a, b) => a.lap - b.lap);
}

export function readStep(store: ArtifactStore, campaignId: string, step: string): Promise<StepRecord | null> {
  return readOptional(store, campaignKeys.step(campaignId, step), stepRecordSchema);
}

export async function writeStep(store: ArtifactStore, campaignId: string, record: StepRecord): Promise<void> {
  const executions = record.executions.map((e) =>
    e.error === undefined ? e : { ...e, error: redactSecrets(e.error) },
  );
  await putJson(store, campaignKeys.step(campaignId, record.step), { ...record, executions });
}

export async function listSteps(store: ArtifactStore, campaignId: string): Promise<StepRecord[]> {
  const keys = await store.list(campaignKeys.stepsPrefix(campaignId));
  return Promise.all(
    keys.filter((k) => k.endsWith('.json')).map((k) => getRecord<StepRecord>(store, k, stepRecordSchema)),
  );
}

/** Another live process runs the campaign. */
export class CampaignBusyError extends Error {
  readonly type = 'CampaignBusy' as const;
  override readonly name = 'CampaignBusyError';
  constructor(
    readonly campaignId: string,
    readonly pid: number,
  ) {
    super(`campaign '${campaignId}' is being run by process ${pid} on this machine; wait for it or stop it first`);
  }
}

/**
 * How long a new owner waits before reading its claim back. Two processes that both found the
 * campaign free both write their claim; the store keeps the later one, and the earlier writer,
 * reading back after a racing writer's read-then-write has had time to land, steps back.
 */
const CLAIM_SETTLE_MS = 500;

/**
 * The lock of a running campaign: its status names the process and host that run it. A second
 * live process on this host is refused; a status left by a process that is gone (it crashed)
 * is taken over, so the new run resumes the campaign.
 */
export async function acquireCampaign(store: ArtifactStore, campaignId: string): Promise<void> {
  const status = await readStatus(store, campaignId);
  if (
    status &&
    (status.status === 'running' || status.status === 'paused') &&
    status.pid &&
    status.pid !== process.pid &&
    status.host === hostname()
  ) {
    let alive = true;
    try {
      process.kill(status.pid, 0);
    } catch {
      alive = false;
    }
    if (alive) throw new CampaignBusyError(campaignId, status.pid);
  }
  await writeStatus(store, campaignId, { status: 'running', pid: process.pid, host: hostname() });
  await new Promise((resolve) => setTimeout(resolve, CLAIM_SETTLE_MS));
  const claim = await readStatus(store, campaignId);
  if (claim?.pid && (claim.pid !== process.pid || claim.host !== hostname())) {
    throw new CampaignBusyError(campaignId, claim.pid);
  }
}

/**
 * The running step's last heartbeat, persisted at most every 2 s, so `diffem status` in
 * another terminal can draw its progress bar.
 */
export class ProgressRecorder {
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
      .then(() => putJson(this.store, campaignKeys.progress(this.campaignId), running))
      .catch(() => undefined);
  }

  /** The next heartbeat is written at once (a new step started). */
  reset(): void {
    this.last = 0;
  }
}

/** The ids of every campaign in a store, sorted: each has a manifest under `campaigns/{id}/`. */
export async function listCampaignIds(store: ArtifactStore): Promise<string[]> {
  const keys = await store.list('campaigns/');
  const ids = new Set<string>();
  for (const key of keys) {
    const m = /^campaigns\/([^/]+)\/campaign\.json$/.exec(key);
    if (m) ids.add(m[1]);
  }
  return [...ids].sort();
}
