/**
 * The EM-MMPS E-step for one shard (the baseline of docs/method.md): the UNCONDITIONAL
 * denoiser of the previous M-step, loaded from its tfjs weights so that it can be
 * differentiated, guided towards each observation by moment matching
 * (`models/guidance/mmps.ts`) and run through the same ancestral sampler as DiffEM's
 * conditional denoiser. One guided evaluation costs 1 forward pass + the solver's iterations
 * + 1 VJPs (fewer when every row's solve converges early); the count is returned so the
 * lap records the E-step's network evaluations, with the solves' clamps and residuals.
 * Reference: Rozet et al. (NeurIPS 2024), Sec. 4 (EM with MMPS).
 */
import { initBackend } from '../../models/backend.js';
import { checkParams, MlpNetwork } from '../../models/denoisers/mlp.js';
import { DifferentiableMlp } from '../../models/guidance/mlp.js';
import { MmpsDenoiser, type MmpsSolver } from '../../models/guidance/mmps.js';
import { denseOperator } from '../../models/guidance/operator.js';
import type { NDArray } from '../../models/ndarray.js';
import type { Rng } from '../../models/rng.js';
import { ancestralSample } from '../../models/samplers/ancestral.js';
import type { SamplerProgress } from '../../models/samplers/sampler.js';
import { logLinearSchedule } from '../../models/schedule.js';
import type { VectorCampaignConfig } from '../../workflows/config.js';
import type { ArtifactRef, GuidanceStats } from '../../workflows/types.js';
import { BadInputError } from '../errors.js';
import { getTensors } from '../../store/tensors.js';
import type { ArtifactStore } from '../../store/store.js';
import { networkConfig } from './train.js';

export interface MmpsRequest {
  store: ArtifactStore;
  config: VectorCampaignConfig;
  /** Weights (safetensors) of the unconditional denoiser to guide. */
  weights: ArtifactRef;
  /** Observations y [n, m] and their operators A [n, m, d]. */
  y: NDArray;
  A: NDArray;
  /** The shard's E-step stream. */
  rng: Rng;
  onStep?: SamplerProgress;
}

export interface MmpsResult {
  /** One posterior sample per observation, [n, d]. */
  x: NDArray;
  /** Network passes over the shard (forward + VJPs), the final denoise included. */
  passes: number;
  /** Mean passes per guided evaluation. */
  passesPerStep: number;
  /** How the guidance solves went (solver, clamps, residuals). */
  guidance: GuidanceStats;
}

/** Largest observation size m solved exactly (m Krylov iterations) when the config leaves it open. */
export const EXACT_SOLVE_MAX_M = 64;

/** Krylov iterations the config left open fall back to this for larger m. */
export const LARGE_M_ITERATIONS = 3;

/**
 * The guidance solve of a campaign whose observations have m values: `estep.mmpsSolver`, and
 * `estep.mmpsCgIterations` where given, else an exact solve for small m (the authors solve
 * their 2 x 2 manifold systems fully) and 3 iterations beyond that.
 */
export function guidanceSettings(
  estep: { mmpsCgIterations?: number; mmpsSolver: MmpsSolver },
  m: number,
): { solver: MmpsSolver; iterations: number } {
  const iterations = estep.mmpsCgIterations ?? (m <= EXACT_SOLVE_MAX_M ? m : LARGE_M_ITERATIONS);
  return { solver: estep.mmpsSolver, iterations };
}

export async function mmpsPosteriorSample(request: MmpsRequest): Promise<MmpsResult> {
  const { store, config, y, A } = request;
  if (config.method !== 'emmps')
    throw new BadInputError(
      'InvalidConfig',
      `mmpsPosteriorSample runs EM-MMPS campaigns, got method '${config.method}'`,
    );
  const network = networkConfig(config, false);
  const { tensors } = await getTensors(store, request.weights);
  try {
    checkParams(network, tensors, request.weights.key);
  } catch (error) {
    throw new BadInputError('ShapeMismatch', error instanceof Error ? error.message : String(error));
  }
  // The guidance VJPs are training-shaped work (forward + backward), so they take the
  // campaign's kernel choice, set explicitly so that nothing earlier in the process decides it.
  await initBackend({ device: config.runtime.device, kernels: config.runtime.kernels ?? 'portable' });
  const prior = new DifferentiableMlp(MlpNetwork.fromParams(network, tensors, false));
  const observation = { y: Float64Array.from(y.data), operator: denseOperator(A), noiseStd: config.channel.noiseStd };
  const settings = guidanceSettings(config.estep, A.shape[1]);
  const guided = new MmpsDenoiser(prior, observation, settings);
  try {
    const x = await ancestralSample(guided, {
      steps: config.estep.steps,
      schedule: logLinearSchedule(config.schedule.sigmaMin, config.schedule.sigmaMax),
      rng: request.rng,
      cond: null,
      count: y.shape[0],
      onStep: request.onStep,
    });
    if (!x.data.every(Number.isFinite)) {
      throw new BadInputError('NonFiniteData', `MMPS posterior samples hold NaN or Inf (model ${request.weights.key})`);
    }
    return {
      x,
      passes: guided.passes,
      passesPerStep: guided.passes / guided.evaluations,
      guidance: { ...settings, ...guided.solveStats() },
    };
  } finally {
    await guided.dispose();
  }
}
