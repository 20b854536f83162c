/**
 * Retraining: campaigns that continue earlier ones as new data arrives.
 *
 * - Warm start (`init: { from: PARENT }`): `resolveParent` finds the parent's final conditional
 *   model (the M-step of its last lap, by its recorded sha256) and checks that the two
 *   campaigns learn the same network on the same kind of data; the campaign's lap 0 then
 *   samples with that model and trains on from its weights (workflows/campaign.ts), and its
 *   summary names the parent.
 * - A schedule (`planRetraining`) runs on a config whose `data.source` is a growing folder or
 *   S3 prefix: at each tick it snapshots the source, and either trains a new campaign
 *   (`{schedule}-NNNN`) warm-started from the schedule's last successful one, or records
 *   "no new data" when the source holds exactly the files that campaign learned from. Each
 *   tick is appended to `schedules/{schedule}/runs.json`. The embedded engine's
 *   `diffem retrain` calls it per tick (from cron); a Temporal schedule can call it from an
 *   activity and start the campaign it returns.
 */
import { snapshotSource, type SourceSnapshot } from '../activities/vector/source.js';
import { getJson, putJson, type ArtifactStore } from '../store/store.js';
import type { CampaignConfig } from '../workflows/config.js';
import { campaignKeys, scheduleRunsKey } from '../workflows/keys.js';
import type { ParentModel } from '../workflows/types.js';
import { finalModels } from './final-models.js';
import { canonicalJson, readManifest, readStatus, validateCampaignId } from './records.js';

/** The parent's final conditional model, for `config.init.from`; throws naming `init.from` when it cannot serve. */
export async function resolveParent(store: ArtifactStore, config: CampaignConfig): Promise<ParentModel | undefined> {
  const from = config.init?.from;
  if (!from) return undefined;
  const manifest = await readManifest(store, from);
  if (!manifest) throw new Error(`init.from: no campaign '${from}' in ${store.uri}`);
  const status = await readStatus(store, from);
  if (status?.status !== 'done') {
    throw new Error(`init.from: campaign '${from}' has not finished (status ${status?.status ?? 'unknown'})`);
  }
  const parent = manifest.config;
  const same = (part: (c: CampaignConfig) => unknown) => canonicalJson(part(parent)) === canonicalJson(part(config));
  for (const [field, part] of [
    ['model', (c: CampaignConfig) => c.model],
    ['channel', (c: CampaignConfig) => c.channel],
    ['data.dim', (c: CampaignConfig) => c.data.dim],
    ['schedule', (c: CampaignConfig) => c.schedule],
  ] as const) {
    if (!same(part))
      throw new Error(
        `init.from: campaign '${from}' has another ${field}; a warm start keeps the network and the data's kind`,
      );
  }
  const { summary, conditional } = await finalModels(store, from);
  if (!conditional || !summary.finalModel) {
    throw new Error(`init.from: campaign '${from}' has no final conditional model (method ${parent.method})`);
  }
  return { campaignId: from, weights: summary.finalModel, onnx: conditional };
}

export interface ScheduleTick {
  at: string;
  outcome: 'trained' | 'no new data';
  campaignId: string;
  /** The campaign it continued (absent for the schedule's first). */
  parent?: string;
  snapshot: { digest: string; files: number };
}

export type RetrainingPlan =
  | {
      action: 'train';
      campaignId: string;
      config: CampaignConfig;
      parent?: string;
      snapshot: SourceSnapshot;
      resume: boolean;
    }
  | { action: 'no new data'; last: string; snapshot: SourceSnapshot };

export async function readScheduleRuns(store: ArtifactStore, schedule: string): Promise<ScheduleTick[]> {
  const key = scheduleRunsKey(schedule);
  return (await store.exists(key)) ? getJson<ScheduleTick[]>(store, key) : [];
}

async function appendTick(store: ArtifactStore, schedule: string, tick: ScheduleTick): Promise<void> {
  const runs = await readScheduleRuns(store, schedule);
  await putJson(store, scheduleRunsKey(schedule), [...runs, tick]);
}

/**
 * What the schedule's next tick does. `config` is the schedule's config; `warmLaps`, when
 * given, replaces `em.laps` for warm-started campaigns (they need fewer).
 */
export async function planRetraining(
  store: ArtifactStore,
  schedule: string,
  config: CampaignConfig,
  warmLaps?: number,
): Promise<RetrainingPlan> {
  validateCampaignId(schedule);
  if (config.data.kind !== 'manifold' || !config.data.source) {
    throw new Error(
      `schedule '${schedule}': retraining needs a vector config with data.source (a growing folder or S3 prefix)`,
    );
  }
  const snapshot = await snapshotSource(config.data.source);
  const trained = (await readScheduleRuns(store, schedule)).filter((t) => t.outcome === 'trained');
  const previous = trained[trained.length - 1];
  if (previous && (await readStatus(store, previous.campaignId))?.status !== 'done') {
    // The last tick's campaign did not finish (killed, failed): resume it before anything newer.
    const manifest = await readManifest(store, previous.campaignId);
    if (manifest) {
      return {
        action: 'train',
        campaignId: previous.campaignId,
        config: manifest.config,
        parent: previous.parent,
        snapshot,
        resume: true,
      };
    }
  }
  const done = [];
  for (const t of trained) if ((await readStatus(store, t.campaignId))?.status === 'done') done.push(t);
  const last = done[done.length - 1];
  if (last) {
    const seen = await getJson<SourceSnapshot>(store, campaignKeys.snapshot(last.campaignId));
    if (seen.digest === snapshot.digest) return { action: 'no new data', last: last.campaignId, snapshot };
  }
  const campaignId = `${schedule}-${String(trained.length + 1).padStart(4, '0')}`;
  const { init: _init, ...base } = config;
  const next: CampaignConfig = last
    ? { ...base, init: { from: last.campaignId }, em: { ...base.em, laps: warmLaps ?? base.em.laps } }
    : base;
  return { action: 'train', campaignId, config: next, parent: last?.campaignId, snapshot, resume: false };
}

/** Records a tick: the campaign a plan trained (once it is done), or that nothing new arrived. */
export async function recordTick(store: ArtifactStore, schedule: string, plan: RetrainingPlan): Promise<ScheduleTick> {
  const tick: ScheduleTick =
    plan.action === 'train'
      ? {
          at: new Date().toISOString(),
          outcome: 'trained',
          campaignId: plan.campaignId,
          ...(plan.parent && { parent: plan.parent }),
          snapshot: { digest: plan.snapshot.digest, files: plan.snapshot.files.length },
        }
      : {
          at: new Date().toISOString(),
          outcome: 'no new data',
          campaignId: plan.last,
          snapshot: { digest: plan.snapshot.digest, files: plan.snapshot.files.length },
        };
  await appendTick(store, schedule, tick);
  return tick;
}

/** The chain of campaigns that ends at `campaignId`, oldest first, each with its parent and data snapshot. */
export async function lineageOf(
  store: ArtifactStore,
  campaignId: string,
): Promise<Array<{ campaignId: string; parent: string | null; snapshot: { digest: string; files: number } | null }>> {
  const chain = [];
  const seen = new Set<string>();
  for (let id: string | undefined = campaignId; id && !seen.has(id);) {
    seen.add(id);
    const manifest = await readManifest(store, id);
    if (!manifest) break;
    const key = campaignKeys.snapshot(id);
    const snapshot = (await store.exists(key)) ? await getJson<SourceSnapshot>(store, key) : null;
    const parent = manifest.config.init?.from ?? null;
    chain.unshift({
      campaignId: id,
      parent,
      snapshot: snapshot && { digest: snapshot.digest, files: snapshot.files.length },
    });
    id = parent ?? undefined;
  }
  return chain;
}
