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
  PosteriorSampleInput,
  PosteriorSampleOutput,
  PreparedData,
  SamplePriorInput,
  SamplePriorOutput,
  ShardPlan,
  StepInput,
  TrainInput,
  TrainOutput,
} from '../workflows/types.js';
import type { Untimed } from './activity.js';

/** Which network a training step fits: DiffEM's conditional M-step, EM-MMPS's prior, or the final prior. */
export type TrainingRole = { role: 'train' | 'prior'; conditional: boolean };

export interface Domain {
  prepareData(input: StepInput): Promise<Untimed<PreparedData>>;
  shardDataset(input: StepInput & { observations: ArtifactRef }): Promise<Untimed<ShardPlan>>;
  initializeGaussian(input: InitializeInput): Promise<Untimed<InitializeOutput>>;
  train(input: TrainInput, role: TrainingRole): Promise<Untimed<TrainOutput>>;
  posteriorSample(input: PosteriorSampleInput): Promise<Untimed<PosteriorSampleOutput>>;
  evaluate(input: EvaluateInput): Promise<Untimed<EvaluateOutput>>;
  samplePrior(input: SamplePriorInput): Promise<Untimed<SamplePriorOutput>>;
  renderFigures(input: FigureInput): Promise<Untimed<FigureOutput>>;
}

/** Whether a campaign's M-step trains a conditional model (DiffEM) or the prior itself (EM-MMPS). */
export function mStepIsConditional(config: CampaignConfig): boolean {
  return config.method === 'diffem';
}
