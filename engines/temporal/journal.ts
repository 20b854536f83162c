/**
 * The step journal on Temporal: what makes a campaign started again under the same id (after
 * it failed, was cancelled or terminated) skip the steps it already finished, as the embedded
 * engine does. Temporal forgets a closed workflow's activity results; the store does not.
 *
 * Each campaign activity the worker runs is wrapped: on success it writes the step's record
 * (engines/records.ts StepRecord at `campaignKeys.step(id, step)`, the embedded engine's
 * format; the step id is the activity id) with the digest of its input and its output. On a
 * later start, an activity whose record is `done` with the same input digest, and whose every
 * output artifact is still in the store with the recorded sha256 and size, returns the
 * recorded output without computing anything. Anything else (no record, other inputs, a
 * missing or changed artifact) runs the activity, which writes the same keys again.
 */
import { Context } from '@temporalio/activity';
import { storeFor } from '../../store/open.js';
import type { ArtifactStore } from '../../store/store.js';
import type { ArtifactRef } from '../../store/ref.js';
import type { ActivityName, CampaignActivities, StepInput } from '../../workflows/types.js';
import { canonicalJson, inputDigest, readStep, writeStep, type StepRecord } from '../records.js';

/** Records of the campaign's bookkeeping are cheap to redo and idempotent: not journaled. */
const UNJOURNALED: ReadonlySet<ActivityName> = new Set<ActivityName>(['recordLap', 'finishCampaign']);

export function journaled(activities: CampaignActivities): CampaignActivities {
  const wrapped: Record<string, unknown> = { ...activities };
  for (const name of Object.keys(activities) as ActivityName[]) {
    if (UNJOURNALED.has(name)) continue;
    const run = activities[name] as (input: StepInput) => Promise<unknown>;
    wrapped[name] = (input: StepInput) => withJournal(name, input, run);
  }
  return wrapped as unknown as CampaignActivities;
}

async function withJournal(
  name: ActivityName,
  input: StepInput,
  run: (input: StepInput) => Promise<unknown>,
): Promise<unknown> {
  const info = Context.current().info;
  const step = info.activityId;
  const store = storeFor(input.store);
  const digest = inputDigest(input);
  const recorded = await readStep(store, input.campaignId, step);
  if (recorded?.status === 'done' && recorded.inputDigest === digest && (await artifactsIntact(store, recorded.output)))
    return recorded.output;

  const startedAt = new Date().toISOString();
  const output = await run(input);
  // Round-trip through JSON, so that a reused output is exactly what the first run returned.
  const stored = JSON.parse(canonicalJson(output)) as unknown;
  const earlier = recorded?.inputDigest === digest ? recorded.executions : [];
  const record: StepRecord = {
    step,
    activity: name,
    inputDigest: digest,
    status: 'done',
    executions: [...earlier, { attempt: info.attempt, startedAt, endedAt: new Date().toISOString(), outcome: 'done' }],
    output: stored,
  };
  await writeStep(store, input.campaignId, record);
  return output;
}

/** Every artifact ref in `output` names bytes the store still holds, unchanged. */
async function artifactsIntact(store: ArtifactStore, output: unknown): Promise<boolean> {
  const refs: ArtifactRef[] = [];
  collectRefs(output, refs);
  for (const ref of refs) {
    const found = await store.head(ref.key);
    if (!found || found.sha256 !== ref.sha256 || found.bytes !== ref.bytes) return false;
  }
  return true;
}

function collectRefs(value: unknown, into: ArtifactRef[]): void {
  if (Array.isArray(value)) {
    for (const item of value) collectRefs(item, into);
    return;
  }
  if (!value || typeof value !== 'object') return;
  const v = value as Record<string, unknown>;
  if (typeof v.key === 'string' && typeof v.sha256 === 'string' && typeof v.bytes === 'number') {
    into.push({ key: v.key, sha256: v.sha256, bytes: v.bytes });
    return;
  }
  for (const item of Object.values(v)) collectRefs(item, into);
}
