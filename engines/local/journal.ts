/**
 * The embedded engine's journal: one record per step under `campaigns/{id}/steps/`, written
 * atomically through the artifact store before a step starts and after it ends. A step
 * whose record says `done` is never run again: its stored output is returned instead. A
 * record left `running` by a killed process counts as an interrupted attempt.
 */
import { campaignKey } from '../../activities/io.js';
import { getJson, putJson, sha256Hex, type ArtifactStore } from '../../activities/store/store.js';

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

export interface StepRecord {
  step: string;
  activity: string;
  inputDigest: string;
  status: 'running' | 'done' | 'failed';
  executions: Execution[];
  output?: unknown;
}

export function stepKey(campaignId: string, step: string): string {
  return campaignKey(campaignId, 'steps', `${step}.json`);
}

/** Digest of an activity input, without the store's address (a moved store is the same campaign). */
export function inputDigest(input: object): string {
  const { store: _store, ...rest } = input as Record<string, unknown>;
  return sha256Hex(new TextEncoder().encode(canonicalJson(rest)));
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

export async function readStep(store: ArtifactStore, campaignId: string, step: string): Promise<StepRecord | null> {
  const key = stepKey(campaignId, step);
  if (!(await store.exists(key))) return null;
  return getJson<StepRecord>(store, key);
}

export async function writeStep(store: ArtifactStore, campaignId: string, record: StepRecord): Promise<void> {
  await putJson(store, stepKey(campaignId, record.step), record);
}

export async function listSteps(store: ArtifactStore, campaignId: string): Promise<StepRecord[]> {
  const prefix = campaignKey(campaignId, 'steps') + '/';
  const keys = await store.list(prefix);
  return Promise.all(keys.filter((k) => k.endsWith('.json')).map((k) => getJson<StepRecord>(store, k)));
}
