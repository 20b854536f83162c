/**
 * What crosses the boundary between the campaign definition and its activities: small JSON
 * only (artifact keys with their sha256, metrics, timings), never tensors, so Temporal's
 * 2 MB payload limit never bites and every value in a history can be audited.
 */
import type { ArtifactRef } from '../store/ref.js';
import type { CampaignConfig } from './config.js';

export type { ArtifactRef } from '../store/ref.js';

/** Fields every activity receives: where artifacts live, which campaign, its config. */
export interface StepInput {
  store: string;
  campaignId: string;
  config: CampaignConfig;
}

export interface Timed {
  /** Wall-clock seconds of the activity's own work. */
  seconds: number;
  /** Which attempt produced this result (1 = first). */
  attempt: number;
}

export interface PreparedData extends Timed {
  observations: ArtifactRef;
  clean: ArtifactRef;
  truth: ArtifactRef;
  /** sha256 of the observations: the dataset's identity in every record. */
  datasetDigest: string;
  count: number;
  /** The files a `data.source` held when the campaign read them (absent for drawn data). */
  snapshot?: ArtifactRef;
}

/** A warm start's parent: its final conditional model, resolved by the engine before the campaign starts. */
export interface ParentModel {
  campaignId: string;
  weights: ArtifactRef;
  onnx: ArtifactRef;
}

export interface Shard {
  index: number;
  start: number;
  end: number;
  observations: ArtifactRef;
}

export interface ShardPlan extends Timed {
  shards: Shard[];
}

export interface InitializeInput extends StepInput {
  shards: Shard[];
}

export interface InitializeOutput extends Timed {
  gaussian: ArtifactRef;
  samples: ArtifactRef[];
  logLikelihood: number[];
}

export interface TrainInput extends StepInput {
  lap: number;
  /** Reconstructions to train on, one artifact per shard. */
  samples: ArtifactRef[];
  /** Weights to warm-start from (null: fresh init). */
  init: ArtifactRef | null;
}

export interface TrainOutput extends Timed {
  weights: ArtifactRef;
  onnx: ArtifactRef;
  losses: number[];
  steps: number;
  /** Steps skipped because a checkpoint of an earlier attempt was resumed. */
  resumedFromStep: number;
  /** Gradient shards of each minibatch (fixes the numerics) and the threads that ran them. */
  gradientShards?: number;
  trainThreads?: number;
  /**
   * Network passes over one row that the model's training cost: steps x batch x 2 (a
   * forward and a backward pass per row), resumed steps included, as they are the model's.
   */
  trainingEvaluations?: number;
}

/**
 * Where a lap-numbered step belongs. `lap` names its random streams; `final` marks the final
 * stage, which follows the last lap DONE (fewer than `em.laps` after a stop) and writes under
 * `final/`. Absent on ordinary laps, so their inputs (and journal digests) stay as they were.
 */
export interface LapStep {
  lap: number;
  final?: true;
}

export interface PosteriorSampleInput extends StepInput, LapStep {
  shard: Shard;
  /** The ONNX model of the denoiser that samples. */
  model: ArtifactRef;
  /** The same model's tfjs weights: EM-MMPS differentiates through its denoiser (absent under DiffEM). */
  weights?: ArtifactRef;
}

export interface PosteriorSampleOutput extends Timed {
  samples: ArtifactRef;
  /** Network evaluations (rows x passes). */
  evaluations: number;
  /** EM-MMPS only: how its guidance solves went. */
  guidance?: GuidanceStats;
}

/**
 * How EM-MMPS's m x m guidance solves went over one shard or one lap, so a reader can see
 * how often the baseline ran on a clamped (or unconverged) solve.
 */
export interface GuidanceStats {
  solver: 'cg' | 'gmres';
  /** Krylov iterations allowed per guided evaluation. */
  iterations: number;
  /** Guided evaluations (batched denoiser calls). */
  evaluations: number;
  /** CG directions whose non-positive curvature was clamped, summed over rows and evaluations. */
  breakdowns: number;
  /** Largest final relative residual |r| / |b| over rows and evaluations. */
  residualMax: number;
  /** Mean over evaluations of the largest final relative residual over rows. */
  residualMean: number;
}

export interface EvaluateInput extends StepInput, LapStep {
  shards: Shard[];
  samples: ArtifactRef[];
  clean: ArtifactRef;
  truth: ArtifactRef;
}

export type Metrics = Record<string, number>;

export interface EvaluateOutput extends Timed {
  metrics: Metrics;
}

export interface SamplePriorInput extends StepInput {
  model: ArtifactRef;
  clean: ArtifactRef;
  truth: ArtifactRef;
}

export interface SamplePriorOutput extends Timed {
  samples: ArtifactRef;
  metrics: Metrics;
}

export interface FigureInput extends StepInput {
  /** E-step samples of the laps to draw, first and last. */
  laps: Array<LapStep & { samples: ArtifactRef[] }>;
  prior: ArtifactRef | null;
  truth: ArtifactRef;
}

export interface FigureOutput extends Timed {
  figures: ArtifactRef[];
}

/** One lap of the audit trail, as stored under `campaigns/{id}/laps/`. */
export interface LapRecord {
  lap: number;
  metrics: Metrics;
  artifacts: ArtifactRef[];
  seconds: number;
  /** The stream paths of the lap's random draws under the campaign seed. */
  seeds: Record<string, string>;
  steps: Array<{ step: string; activity: string; seconds: number; attempt: number }>;
  attempts: number;
  failures: number;
  /** E-step network evaluations of this lap. */
  evaluations: number;
  /** Training's network passes of this lap (forward and backward, per row); absent in older records. */
  trainingEvaluations?: number;
  /** EM-MMPS only: its guidance solves over the lap's E-step. */
  guidance?: GuidanceStats;
}

export interface RecordLapInput extends StepInput {
  record: LapRecord;
}

export interface FinishInput extends StepInput {
  summary: CampaignSummary;
}

export interface CampaignSummary {
  campaignId: string;
  laps: number;
  datasetDigest: string;
  finalModel: ArtifactRef | null;
  prior: ArtifactRef | null;
  priorSamples: ArtifactRef | null;
  priorMetrics: Metrics;
  figures: ArtifactRef[];
  lastMetrics: Metrics;
  /** Lineage of a warm-started campaign: the parent it continued (absent otherwise). */
  parent?: string;
  /** The snapshot of a `data.source` the campaign learned from (absent for drawn data). */
  snapshot?: ArtifactRef;
}

/** The activities of a campaign, by name: what both engines call. */
export interface CampaignActivities {
  prepareData(input: StepInput): Promise<PreparedData>;
  shardDataset(input: StepInput & { observations: ArtifactRef }): Promise<ShardPlan>;
  initializeGaussian(input: InitializeInput): Promise<InitializeOutput>;
  trainConditional(input: TrainInput): Promise<TrainOutput>;
  posteriorSample(input: PosteriorSampleInput): Promise<PosteriorSampleOutput>;
  evaluate(input: EvaluateInput): Promise<EvaluateOutput>;
  trainPrior(input: TrainInput): Promise<TrainOutput>;
  samplePrior(input: SamplePriorInput): Promise<SamplePriorOutput>;
  renderFigures(input: FigureInput): Promise<FigureOutput>;
  recordLap(input: RecordLapInput): Promise<ArtifactRef>;
  finishCampaign(input: FinishInput): Promise<ArtifactRef>;
}

export type ActivityName = keyof CampaignActivities;
export type ActivityInput<K extends ActivityName> = Parameters<CampaignActivities[K]>[0];
export type ActivityOutput<K extends ActivityName> = Awaited<ReturnType<CampaignActivities[K]>>;
