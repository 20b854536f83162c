/**
 * What a report shows, read back from the store: per run (one campaign, or each method of
 * a comparison) the per-lap metrics with the E-step network evaluations and their running
 * total, the final E-step (the `final/` steps of the journal), subsamples of the stored
 * E-step samples of a few laps, the campaign's figures, and each lap's lineage (artifacts
 * with sha256 and size, durations, attempts). Plain JSON, so the page carries it inline.
 */
import { createHash } from 'node:crypto';
import { getTensors } from '../store/tensors.js';
import { campaignKeys } from '../workflows/keys.js';
import { getJson, sha256Hex, type ArtifactStore } from '../store/store.js';
import {
  listSteps,
  readLapRecords,
  readStatus,
  readSummary,
  requireCampaign,
  type StepRecord,
} from '../engines/records.js';
import { curveFunction, type CurveParams } from '../models/manifold.js';
import { collectRefs, mergeGuidance } from '../workflows/campaign.js';
import { lineageOf } from '../engines/lineage.js';
import type { CampaignConfig } from '../workflows/config.js';
import type { ArtifactRef, CampaignSummary, GuidanceStats, Metrics } from '../workflows/types.js';
import { campaignHistory } from './history.js';
import type { EqualComputePlan, Verdict } from './equal-compute.js';

/** The comparison record that `diffem compare` writes under `campaigns/{id}/comparison.json`. */
export interface ComparisonRecord {
  id: string;
  /** sha256 of the observations' values (shapes and float32 bytes of y and the operators), equal for both runs. */
  datasetDigest: string;
  seed: number;
  laps: number;
  trainingSteps: number;
  estepSteps: number;
  /** True when both methods ran the shared config's settings (`--same-settings`). */
  sameSettings?: boolean;
  runs: ComparisonRun[];
  /** The cheaper method run on to the dearer one's total passes (absent: `--equal-laps`, or equal already). */
  equalCompute?: EqualComputeRecord;
  /** Who wins each statistic, at equal laps and at equal compute. */
  verdicts?: ComparisonVerdicts;
}

export interface EqualComputeRecord extends EqualComputePlan {
  campaignId: string;
  /** Laps of the original run the extended one reproduced (metrics equal), lap 0 included. */
  reproducedLaps: number;
  run: ComparisonRun;
}

export interface ComparisonVerdicts {
  equalLaps: Verdict[];
  equalCompute: Verdict[];
}

/** What a method ran on: its training noise levels, sampler and (EM-MMPS) guidance solve. */
export interface MethodSettings {
  method: CampaignConfig['method'];
  timeDistribution: string;
  sigmaMin: number;
  sigmaMax: number;
  trainingSteps: number;
  estepSteps: number;
  /** EM-MMPS only. */
  solver?: 'cg' | 'gmres';
  /** EM-MMPS only: Krylov iterations per guided evaluation, as recorded (else as configured; null: 'exact for small m', not yet run). */
  solverIterations?: number | null;
}

export function methodSettings(
  config: CampaignConfig,
  laps: ReadonlyArray<{ guidance?: GuidanceStats }>,
): MethodSettings {
  const settings: MethodSettings = {
    method: config.method,
    timeDistribution: config.training.timeDistribution,
    sigmaMin: config.schedule.sigmaMin,
    sigmaMax: config.schedule.sigmaMax,
    trainingSteps: config.training.steps,
    estepSteps: config.estep.steps,
  };
  if (config.method !== 'emmps') return settings;
  const recorded = laps.find((l) => l.guidance)?.guidance;
  return {
    ...settings,
    solver: recorded?.solver ?? config.estep.mmpsSolver,
    solverIterations: recorded?.iterations ?? config.estep.mmpsCgIterations ?? null,
  };
}

export function describeSettings(s: MethodSettings): string {
  const solve =
    s.method === 'emmps'
      ? `, guidance ${s.solver ?? 'cg'} x ${s.solverIterations ?? 'exact (small m)'} iterations`
      : '';
  return `time distribution ${s.timeDistribution}, sigma ${s.sigmaMin}..${s.sigmaMax}, ${s.trainingSteps} training steps per lap, ${s.estepSteps} sampler steps${solve}`;
}

export interface ComparisonRun {
  method: CampaignConfig['method'];
  campaignId: string;
  settings: MethodSettings;
  laps: Array<{
    lap: number;
    metrics: Metrics;
    evaluations: number;
    cumulativeEvaluations: number;
    /** Every network pass so far, training (forward and backward) and sampling. */
    cumulativePasses: number;
    seconds: number;
    /** Activity seconds so far (absent in records written before it was kept). */
    cumulativeSeconds?: number;
    guidance?: GuidanceStats;
  }>;
  final: {
    metrics: Metrics;
    evaluations: number | null;
    cumulativeEvaluations: number | null;
    cumulativePasses: number | null;
  } | null;
  priorMetrics: Metrics | null;
  seconds: number;
}

export function comparisonKey(id: string): string {
  return campaignKeys.comparison(id);
}

export interface ReportLap {
  /** The lap number; the final E-step's is one past the last lap done. */
  lap: number;
  label: string;
  metrics: Metrics;
  /** E-step network evaluations of this lap (null: unknown). */
  evaluations: number | null;
  cumulativeEvaluations: number | null;
  /** Training's network passes of this lap (forward and backward per row). */
  trainingEvaluations: number | null;
  /** Every network pass so far, training and sampling: the report's cost axis. */
  cumulativePasses: number | null;
  /** Activity seconds so far (wall time of the work, replays excluded). */
  cumulativeSeconds: number;
  /** EM-MMPS only: the lap's guidance solves. */
  guidance?: GuidanceStats;
  seconds: number;
  attempts: number;
  failures: number;
  started: string | null;
  finished: string | null;
  artifacts: ArtifactRef[];
}

export interface SampleCloud {
  lap: number;
  label: string;
  /** Rows of the samples, flat [count, dim], rounded. */
  points: number[];
  count: number;
}

export interface ReportFigure {
  name: string;
  dataUri: string;
  bytes: number;
  sha256: string;
}

export interface ReportRun {
  campaignId: string;
  method: string;
  settings: MethodSettings;
  status: string;
  /** sha256 of the observations' values (null: no observations stored yet). */
  datasetDigest: string | null;
  laps: ReportLap[];
  priorMetrics: Metrics | null;
  samples: SampleCloud[];
  figures: ReportFigure[];
  /** Retraining: the campaigns this one continues, oldest first, ending with itself (one link when none). */
  chain: ChainLink[];
}

export interface ChainLink {
  campaignId: string;
  parent: string | null;
  snapshot: { digest: string; files: number } | null;
  laps: number | null;
  metrics: Metrics | null;
}

export interface ReportData {
  id: string;
  kind: 'campaign' | 'comparison';
  title: string;
  dim: number;
  /** The true curve, flat [count, dim] (null when the campaign has none). */
  curve: number[] | null;
  metricNames: string[];
  config: CampaignConfig;
  runs: ReportRun[];
  /** A comparison's equal-compute run and the verdicts (absent when it has none). */
  equalCompute?: ReportEqualCompute;
}

export interface ReportEqualCompute extends EqualComputePlan {
  run: ReportRun;
  reproducedLaps: number;
  verdicts: ComparisonVerdicts;
}

export interface ReportOptions {
  /** Sample points kept per drawn lap. */
  maxPoints?: number;
  /** Points along the true curve. */
  curvePoints?: number;
}

/** Largest data dimension whose E-step samples are drawn as 2-D projections. */
const MAX_CLOUD_DIM = 8;

const METRIC_ORDER = [
  'sinkhorn',
  'curve_distance_mean',
  'curve_distance_median',
  'curve_distance_p90',
  'coverage',
  'consistency',
  'final_loss',
  'psnr',
  'fid',
  'inception_score',
];

/** A campaign's report, or a comparison's when `campaigns/{id}/comparison.json` exists. */
export async function loadReportData(
  store: ArtifactStore,
  id: string,
  options: ReportOptions = {},
): Promise<ReportData> {
  const comparison = (await store.exists(comparisonKey(id)))
    ? await getJson<ComparisonRecord>(store, comparisonKey(id))
    : null;
  const campaignIds = comparison ? comparison.runs.map((r) => r.campaignId) : [id];
  const manifests = await Promise.all(campaignIds.map((c) => requireCampaign(store, c)));
  const config = manifests[0].config;
  const runs = await Promise.all(campaignIds.map((c, i) => loadRun(store, c, manifests[i].config, options)));
  const present = new Set(
    runs.flatMap((r) => r.laps.flatMap((l) => Object.keys(l.metrics).filter((k) => Number.isFinite(l.metrics[k])))),
  );
  const metricNames = [
    ...METRIC_ORDER.filter((m) => present.has(m)),
    ...[...present].filter((m) => !METRIC_ORDER.includes(m)).sort(),
  ];
  const equal = comparison?.equalCompute;
  const equalCompute: ReportEqualCompute | undefined = equal && {
    extended: equal.extended,
    against: equal.against,
    budgetPasses: equal.budgetPasses,
    ownPasses: equal.ownPasses,
    perLapPasses: equal.perLapPasses,
    fromLaps: equal.fromLaps,
    laps: equal.laps,
    reproducedLaps: equal.reproducedLaps,
    run: await loadRun(store, equal.campaignId, (await requireCampaign(store, equal.campaignId)).config, options),
    verdicts: comparison.verdicts ?? { equalLaps: [], equalCompute: [] },
  };
  const curve = await loadCurve(store, campaignIds[0], config.data.dim, options.curvePoints ?? 400);
  const title = comparison
    ? `${id}: ${runs.map((r) => r.method).join(' vs ')} (seed ${comparison.seed}, ${comparison.laps} laps)`
    : `${id}: ${config.method} (seed ${config.seed}, ${config.em.laps} laps)`;
  return {
    id,
    kind: comparison ? 'comparison' : 'campaign',
    title,
    dim: config.data.dim,
    curve,
    metricNames,
    config,
    runs,
    ...(equalCompute && { equalCompute }),
  };
}

async function loadRun(
  store: ArtifactStore,
  campaignId: string,
  config: CampaignConfig,
  options: ReportOptions,
): Promise<ReportRun> {
  const [history, summary, status, steps] = await Promise.all([
    campaignHistory(store, campaignId),
    readSummary(store, campaignId),
    readStatus(store, campaignId),
    listSteps(store, campaignId),
  ]);
  let total = 0;
  let passes = 0;
  let seconds = 0;
  const laps: ReportLap[] = history.map((h) => {
    total += h.evaluations;
    passes += h.evaluations + h.trainingEvaluations;
    seconds += h.seconds;
    return {
      lap: h.lap,
      label: `lap ${h.lap}`,
      metrics: h.metrics,
      evaluations: h.evaluations,
      cumulativeEvaluations: total,
      trainingEvaluations: h.trainingEvaluations,
      cumulativePasses: passes,
      cumulativeSeconds: round3(seconds),
      ...(h.guidance ? { guidance: h.guidance } : {}),
      seconds: h.seconds,
      attempts: h.attempts,
      failures: h.failures,
      started: h.started,
      finished: h.finished,
      artifacts: h.artifacts,
    };
  });
  const final = finalStage(steps, summary?.lastMetrics ?? null, finalLap(summary, history), {
    evaluations: total,
    passes,
    seconds,
  });
  if (final) laps.push(final);

  // Scatter projections suit low-dimensional data (the manifold); images have their figures.
  const drawn = config.data.dim <= MAX_CLOUD_DIM ? chooseLaps(laps) : [];
  const samples: SampleCloud[] = [];
  for (const lap of drawn) {
    const cloud = await loadCloud(store, lap, config.data.dim, options.maxPoints ?? 600);
    if (cloud) samples.push(cloud);
  }
  return {
    campaignId,
    method: config.method,
    settings: methodSettings(config, history),
    status: status?.status ?? (summary ? 'done' : 'unknown'),
    datasetDigest: await observationsDigest(store, campaignId).catch(() => null),
    laps,
    priorMetrics: summary?.priorMetrics ?? null,
    samples,
    figures: await loadFigures(store, campaignId),
    chain: await Promise.all(
      (await lineageOf(store, campaignId)).map(async (link) => {
        const linkSummary = await readSummary(store, link.campaignId);
        return { ...link, laps: linkSummary?.laps ?? null, metrics: linkSummary?.lastMetrics ?? null };
      }),
    ),
  };
}

/**
 * The number the final stage carries: one past the last lap DONE, which is `em.laps` unless
 * the campaign was stopped early (then the summary, or failing it the lap records, say how many).
 */
function finalLap(summary: CampaignSummary | null, history: Array<{ lap: number }>): number {
  return (summary?.laps ?? history.reduce((last, h) => Math.max(last, h.lap), 0)) + 1;
}

/** What the laps before the final stage spent: E-step evaluations, all network passes, activity seconds. */
export interface SpentBefore {
  evaluations: number;
  passes: number;
  seconds: number;
}

/** The final E-step of a campaign, counting from what the laps spent. */
export async function loadFinalStage(
  store: ArtifactStore,
  campaignId: string,
  before: SpentBefore,
): Promise<ReportLap | null> {
  const [steps, summary, history] = await Promise.all([
    listSteps(store, campaignId),
    readSummary(store, campaignId),
    readLapRecords(store, campaignId),
  ]);
  return finalStage(steps, summary?.lastMetrics ?? null, finalLap(summary, history), before);
}

/** The final E-step and what follows it, from the journal's `final/` steps. */
function finalStage(steps: StepRecord[], metrics: Metrics | null, lap: number, before: SpentBefore): ReportLap | null {
  const final = steps.filter((s) => s.step.startsWith('final/')).sort((a, b) => (a.step < b.step ? -1 : 1));
  if (!metrics && final.length === 0) return null;
  const evaluate = final.find((s) => s.step === 'final/evaluate');
  const estep = final.filter((s) => s.step.startsWith('final/estep/'));
  const done = estep.length > 0 && estep.every((s) => s.status === 'done');
  const evaluations = done ? estep.reduce((sum, s) => sum + numberField(s.output, 'evaluations'), 0) : null;
  const prior = final.find((s) => s.step === 'final/prior' && s.status === 'done');
  const training = prior ? numberField(prior.output, 'trainingEvaluations') : 0;
  const guidance = estep.reduce<GuidanceStats | undefined>((sum, s) => {
    const g =
      s.output && typeof s.output === 'object' ? (s.output as { guidance?: GuidanceStats }).guidance : undefined;
    return g ? mergeGuidance(sum, g) : sum;
  }, undefined);
  const seconds = round3(final.reduce((sum, s) => sum + numberField(s.output, 'seconds'), 0));
  const artifacts: ArtifactRef[] = [];
  for (const s of final) collectRefs(s.output, artifacts);
  const executions = final.flatMap((s) => s.executions);
  const starts = executions.map((e) => e.startedAt).sort();
  const ends = executions
    .map((e) => e.endedAt ?? '')
    .filter(Boolean)
    .sort();
  const outputMetrics =
    evaluate?.output && typeof evaluate.output === 'object'
      ? (evaluate.output as { metrics?: Metrics }).metrics
      : undefined;
  return {
    lap,
    label: 'final',
    metrics: metrics ?? outputMetrics ?? {},
    evaluations,
    cumulativeEvaluations: evaluations === null ? null : before.evaluations + evaluations,
    trainingEvaluations: training,
    cumulativePasses: evaluations === null ? null : before.passes + evaluations + training,
    cumulativeSeconds: round3(before.seconds + seconds),
    ...(guidance ? { guidance } : {}),
    seconds,
    attempts: executions.length,
    failures: executions.filter((e) => e.outcome !== 'done').length,
    started: starts[0] ?? null,
    finished: ends[ends.length - 1] ?? null,
    artifacts,
  };
}

/**
 * sha256 of a campaign's observations as numbers: the shapes and float32 bytes of y and A,
 * read through their verified artifact. The artifact's own digest also covers its
 * metadata, which names the campaign, so it differs between equal datasets.
 */
export async function observationsDigest(store: ArtifactStore, campaignId: string): Promise<string> {
  const key = campaignKeys.observations(campaignId);
  const ref = await store.head(key);
  if (!ref) throw new Error(`campaign '${campaignId}' has no observations (${key})`);
  const { tensors } = await getTensors(store, ref);
  const hash = createHash('sha256');
  if (!tensors.y) throw new Error(`${key}: no tensor 'y'`);
  // y, then the operators under their names (A for vectors; masks, or sigmas and kernels, for images).
  const names = [
    'y',
    ...Object.keys(tensors)
      .filter((n) => n !== 'y')
      .sort(),
  ];
  for (const name of names) {
    const t = tensors[name];
    hash.update(`${name}[${t.shape.join(',')}]`);
    hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return hash.digest('hex');
}

function numberField(value: unknown, field: string): number {
  if (!value || typeof value !== 'object') return 0;
  const v = (value as Record<string, unknown>)[field];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** Lap 0, the first EM lap, the last recorded lap and the final E-step: the paper's figure rows. */
function chooseLaps(laps: ReportLap[]): ReportLap[] {
  const recorded = laps.filter((l) => l.label !== 'final');
  const picks = [recorded[0], recorded[1], recorded[recorded.length - 1], laps.find((l) => l.label === 'final')];
  const out: ReportLap[] = [];
  for (const p of picks) if (p && !out.includes(p)) out.push(p);
  return out;
}

const ESTEP_SHARD = /\/estep\/shard-\d+\.safetensors$/;

async function loadCloud(
  store: ArtifactStore,
  lap: ReportLap,
  dim: number,
  maxPoints: number,
): Promise<SampleCloud | null> {
  const shards = lap.artifacts.filter((a) => ESTEP_SHARD.test(a.key)).sort((a, b) => (a.key < b.key ? -1 : 1));
  const points: number[] = [];
  for (const ref of shards) {
    if (points.length >= maxPoints * dim) break;
    const x = (await getTensors(store, ref)).tensors.x;
    if (!x || x.shape[1] !== dim) continue;
    const take = Math.min(x.shape[0], maxPoints - points.length / dim);
    for (let k = 0; k < take * dim; k++) points.push(round4(x.data[k]));
  }
  return points.length
    ? { lap: lap.lap, label: lap.label === 'final' ? 'final E-step' : lap.label, points, count: points.length / dim }
    : null;
}

async function loadCurve(
  store: ArtifactStore,
  campaignId: string,
  dim: number,
  count: number,
): Promise<number[] | null> {
  const key = campaignKeys.truth(campaignId, 'curve.json');
  if (!(await store.exists(key))) return null;
  const f = curveFunction(await getJson<CurveParams>(store, key));
  const point = new Float64Array(dim);
  const out: number[] = [];
  for (let i = 0; i < count; i++) for (const v of f(i / (count - 1), point)) out.push(round4(v));
  return out;
}

async function loadFigures(store: ArtifactStore, campaignId: string): Promise<ReportFigure[]> {
  const keys = (await store.list(campaignKeys.figuresPrefix(campaignId))).filter((k) => k.endsWith('.png'));
  return Promise.all(
    keys.map(async (key) => {
      const bytes = await store.get(key);
      return {
        name: key.slice(key.lastIndexOf('/') + 1),
        dataUri: `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`,
        bytes: bytes.length,
        sha256: sha256Hex(bytes),
      };
    }),
  );
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
