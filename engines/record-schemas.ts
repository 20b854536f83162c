/**
 * The shapes of a campaign's stored records (journal steps, lap records, status, progress,
 * manifest, summary), checked whenever one is read back. The store hands back whatever bytes
 * a key holds: a record edited by hand, cut short by a full disk or written by another
 * program must stop the reader with ArtifactCorruptError naming the key and the field,
 * never be taken for "no record" (which would re-run a step) or crash a reader later on a
 * missing field. Unknown fields pass through, so older readers accept newer records.
 */
import { z } from 'zod';
import { ArtifactCorruptError, getJson, type ArtifactStore } from '../store/store.js';

const text = z.string().max(1 << 20);
const count = z.number().int().nonnegative();
const metrics = z.record(text, z.number().nullable());
const artifactRef = z.looseObject({ key: text, sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: count });

const execution = z.looseObject({
  attempt: count,
  startedAt: text,
  endedAt: text.optional(),
  outcome: z.enum(['running', 'done', 'failed', 'interrupted']),
  error: text.optional(),
  errorType: text.optional(),
});

export const stepRecordSchema = z.looseObject({
  step: text,
  activity: text,
  inputDigest: text,
  status: z.enum(['running', 'done', 'failed']),
  executions: z.array(execution).max(100_000),
});

export const lapRecordSchema = z.looseObject({
  lap: count,
  metrics,
  artifacts: z.array(artifactRef),
  seconds: z.number().nonnegative(),
  seeds: z.record(text, text),
  steps: z.array(z.looseObject({ step: text, activity: text, seconds: z.number(), attempt: count })),
  attempts: count,
  failures: count,
  evaluations: z.number().nonnegative(),
});

export const statusSchema = z.looseObject({
  status: z.enum(['running', 'paused', 'done', 'failed', 'stopped']),
  updatedAt: text,
  pid: count.optional(),
  host: text.optional(),
  error: text.optional(),
  errorType: text.optional(),
  step: text.optional(),
});

export const runningStepSchema = z.looseObject({ step: text, updatedAt: text });

export const controlSchema = z.looseObject({ paused: z.boolean(), stopRequested: z.boolean(), updatedAt: z.string() });

export const manifestSchema = z.looseObject({
  campaignId: text,
  engine: z.enum(['local', 'temporal']),
  config: z.looseObject({ seed: z.number(), em: z.looseObject({ laps: count }) }),
  configDigest: text,
  createdAt: text,
});

export const summarySchema = z.looseObject({
  campaignId: text,
  laps: count,
  priorMetrics: metrics,
  figures: z.array(artifactRef),
});

/**
 * The record at `key`, checked against `schema`; the caller's `T` is the full record type,
 * of which the schema checks the fields readers rely on.
 */
export async function getRecord<T>(store: ArtifactStore, key: string, schema: z.ZodType): Promise<T> {
  const value = await getJson<unknown>(store, key);
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length ? issue.path.map(String).join('.') : '(the record)';
    throw new ArtifactCorruptError(key, store.uri, `field ${where}: ${issue.message}`);
  }
  return value as T;
}
