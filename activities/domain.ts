/**
 * What a domain does: each activity's work for one kind of data, vectors (the manifold: dense
 * operators, the MLP, curve metrics; `vector/`) or images (masks and blur, the U-Net,
 * PSNR/SSIM/FID; `images/`). The activities (`index.ts`) are the same for both: they pick the
 * domain of their input's config, in the one place where a campaign's kind is told apart.
 */
import type { CampaignConfig } from '../workflows/config.js';
import type {
  ArtifactRef,
  EvaluateInput,
  EvaluateOutput,
  FigureInput,
  FigureOutput,
  InitializeInput,
  InitializeOutput,
  Metrics,
  PosteriorSampleInput,
  PosteriorSampleOutput,
  PreparedData,
  SamplePriorInput,
  ShardPlan,
  StepInput,
  TrainInput,
  TrainOutput,
} from '../workflows/types.js';
import type { NDArray } from '../models/ndarray.js';
import type { Rng } from '../models/rng.js';
import type { SamplerProgress } from '../models/samplers/sampler.js';
import type { ArtifactStore } from '../store/store.js';
import type { Untimed } from './activity.js';
import type { ImageObservations } from '../models/channels/image-operators.js';

/** Which network a training step fits: DiffEM's conditional M-step, EM-MMPS's prior, or the final prior. */
export type TrainingRole = { role: 'train' | 'prior'; conditional: boolean };

export interface Domain {
  prepareData(input: StepInput): Promise<Untimed<PreparedData>>;
  shardDataset(input: StepInput & { observations: ArtifactRef }): Promise<Untimed<ShardPlan>>;
  initializeGaussian(input: InitializeInput): Promise<Untimed<InitializeOutput>>;
  train(input: TrainInput, role: TrainingRole): Promise<Untimed<TrainOutput>>;
  posteriorSample(input: PosteriorSampleInput): Promise<Untimed<PosteriorSampleOutput>>;
  evaluate(input: EvaluateInput): Promise<Untimed<EvaluateOutput>>;
  /** The metrics of the final prior's samples (`drawPrior`), from stream `metrics/prior`. */
  priorMetrics(store: ArtifactStore, x: NDArray, input: SamplePriorInput, rng: Rng): Promise<Metrics>;
  renderFigures(input: FigureInput): Promise<Untimed<FigureOutput>>;

  /**
   * Stand-in observations for a growing source (`diffem simulate`, the retraining tests), drawn
   * like the campaign's own from stream `simulate/{part}`; absent where no source kind exists.
   */
  simulateObservations?(part: string, count: number): Record<string, NDArray>;

  /** Whether samples are images (drawn as PNG grids by the commands that use a finished campaign). */
  readonly images: boolean;
  /** `count` draws of a final prior by the campaign's own Heun sampler, shaped as stored. */
  drawPrior(
    store: ArtifactStore,
    model: ArtifactRef,
    count: number,
    rng: Rng,
    onStep?: SamplerProgress,
  ): Promise<NDArray>;
  /**
   * `k` posterior samples of each observation in a user's file (laid out like a data shard)
   * by the E-step's sampler, drawn in one batch: row `j n + i` is sample j of observation i.
   */
  drawPosteriors(
    store: ArtifactStore,
    model: ArtifactRef,
    file: { tensors: Record<string, NDArray>; source: string },
    k: number,
    rng: Rng,
    onStep?: SamplerProgress,
  ): Promise<PosteriorDraws>;
}

export interface PosteriorDraws {
  samples: NDArray;
  /** Images only: the observations as read, for the observation panel. */
  observed?: ImageObservations;
}

/** Whether a campaign's M-step trains a conditional model (DiffEM) or the prior itself (EM-MMPS). */
export function mStepIsConditional(config: CampaignConfig): boolean {
  return config.method === 'diffem';
}
