/**
 * Training a campaign's denoiser the durable way, for every network kind (the domains prepare
 * the data and the network: `vector/train.ts`, `images/train.ts`).
 *
 * Training checkpoints every `training.checkpointEvery` steps and heartbeats the step and the
 * checkpoint's key; a retry resumes from that checkpoint and, since every step's draws derive
 * from (seed, lap, step), ends with the same weights as an uninterrupted run.
 */
import type { ParamMap } from '../models/denoisers/mlp.js';
import type { NDArray } from '../models/ndarray.js';
import { exportedWeights, type TrainCheckpoint } from '../models/training/trainer.js';
import { sha256Hex, type ArtifactStore } from '../store/store.js';
import { storeFor } from '../store/open.js';
import { getTensors, putTensors } from '../store/tensors.js';
import { priorTraining } from '../workflows/config.js';
import { campaignKeys } from '../workflows/keys.js';
import type { TrainInput, TrainOutput } from '../workflows/types.js';
import type { Untimed } from './activity.js';
import { runTrainingJob } from './compute/run-training.js';
import { trainingThreads } from './compute/training-job.js';
import type { MlpTrainingJob, UnetTrainingJob } from './compute/training-job.js';
import { activityContext } from './context.js';
import { BadInputError } from './errors.js';

export interface CheckpointDetails {
  step: number;
  checkpoint: string;
}

/** What differs between the networks a campaign trains; `runCampaignTraining` does the rest. */
export interface PreparedTraining {
  job: Pick<MlpTrainingJob, 'kind' | 'network' | 'data'> | Pick<UnetTrainingJob, 'kind' | 'network' | 'data'>;
  /** Starting weights: the previous lap's (warm start) or a fresh init. */
  params: ParamMap;
  exportOnnx(weights: ParamMap): Uint8Array;
}

/**
 * Trains a campaign's denoiser the durable way, for every network kind: the step count of
 * the role and lap, a checkpoint (keyed by a digest of the job, so only the very job that
 * wrote it resumes it) found through the last heartbeat or at its usual key, training in the
 * worker thread with heartbeats and checkpoints, then the (EMA) weights and their ONNX export.
 */
export async function runCampaignTraining(
  input: TrainInput,
  role: 'train' | 'prior',
  prepared: PreparedTraining,
): Promise<Untimed<TrainOutput>> {
  const context = activityContext();
  const { config, campaignId, lap } = input;
  const store = storeFor(input.store);
  const fileKey = (file: Parameters<typeof campaignKeys.network>[2]) =>
    campaignKeys.network(campaignId, role === 'prior' ? 'prior' : { lap }, file);
  // The prior may carry its own recipe (`prior.batchSize`, `prior.lr`, ...), the M-step never.
  const training = role === 'prior' ? priorTraining(config) : config.training;
  const steps =
    role === 'prior' ? config.prior.steps : lap === 0 ? (training.firstSteps ?? training.steps) : training.steps;
  const network = prepared.job.network;
  const jobDigest = sha256Hex(
    new TextEncoder().encode(
      JSON.stringify({
        role,
        lap,
        steps,
        training,
        network,
        init: input.init?.sha256 ?? null,
        samples: input.samples.map((s) => s.sha256),
      }),
    ),
  );
  const checkpointKey = fileKey('checkpoint.safetensors');
  const details = context.heartbeatDetails as Partial<CheckpointDetails> | undefined;
  const resume = await loadCheckpoint(store, details?.checkpoint ?? checkpointKey, jobDigest);
  const shared = {
    params: prepared.params,
    resume,
    options: {
      steps,
      batchSize: training.batchSize,
      optimizer: {
        lr: training.lr,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        clip: training.clip,
        emaDecay: training.emaDecay,
        emaWarmup: training.emaWarmup,
      },
      lrSchedule: training.lrSchedule,
      timeDistribution: training.timeDistribution,
      seed: config.seed,
      streamPath: [role === 'prior' ? 'prior-train' : 'train', `lap-${lap}`],
    },
    sigmaMin: config.schedule.sigmaMin,
    sigmaMax: config.schedule.sigmaMax,
    checkpointEvery: training.checkpointEvery,
    device: config.runtime.device,
    kernels: config.runtime.kernels ?? 'portable',
    gradientShards: training.gradientShards ?? 1,
    threads: trainingThreads(training.gradientShards ?? 1),
  };
  const state = await runTrainingJob(
    prepared.job.kind === 'mlp' ? { ...prepared.job, ...shared } : { ...prepared.job, ...shared },
    {
      signal: context.signal,
      onProgress: (step, total, loss) => context.heartbeat({ step, steps: total, loss, checkpoint: checkpointKey }),
      onCheckpoint: async (checkpoint) => {
        await saveCheckpoint(store, checkpointKey, checkpoint, jobDigest);
        context.heartbeat({ step: checkpoint.optimizer.step, steps, checkpoint: checkpointKey });
      },
    },
  );

  const weights = exportedWeights(state);
  const meta = { campaign: campaignId, lap: String(lap), role, network: JSON.stringify(network) };
  const weightsRef = await putTensors(store, fileKey('weights.safetensors'), weights, meta);
  const onnx = await store.put(fileKey('denoiser.onnx'), prepared.exportOnnx(weights));
  return {
    weights: weightsRef,
    onnx,
    losses: state.losses.map((l) => Math.round(l * 1e6) / 1e6),
    steps,
    resumedFromStep: resume?.optimizer.step ?? 0,
    gradientShards: shared.gradientShards,
    trainThreads: shared.threads,
    trainingEvaluations: steps * training.batchSize * 2,
  };
}

const GROUPS = ['params', 'm', 'v', 'ema'] as const;

export async function saveCheckpoint(
  store: ArtifactStore,
  key: string,
  state: TrainCheckpoint,
  jobDigest: string,
): Promise<void> {
  const tensors: Record<string, NDArray> = {};
  const groups: Record<(typeof GROUPS)[number], ParamMap | null> = {
    params: state.params,
    m: state.optimizer.m,
    v: state.optimizer.v,
    ema: state.optimizer.ema,
  };
  for (const group of GROUPS)
    for (const [name, t] of Object.entries(groups[group] ?? {})) tensors[`${group}/${name}`] = t;
  await putTensors(store, key, tensors, {
    step: String(state.optimizer.step),
    losses: JSON.stringify(state.losses),
    pendingLoss: JSON.stringify(state.pendingLoss ?? [0, 0]),
    job: jobDigest,
  });
}

export async function loadCheckpoint(
  store: ArtifactStore,
  key: string,
  jobDigest: string,
): Promise<TrainCheckpoint | null> {
  const head = await store.head(key);
  if (!head) return null;
  const { tensors, metadata } = await getTensors(store, head);
  if (metadata.job !== jobDigest) return null;
  const groups: Record<string, ParamMap> = { params: {}, m: {}, v: {}, ema: {} };
  for (const [name, t] of Object.entries(tensors)) {
    const slash = name.indexOf('/');
    const group = groups[name.slice(0, slash)];
    if (!group) throw new BadInputError('ShapeMismatch', `${key}: unexpected tensor '${name}' in checkpoint`);
    group[name.slice(slash + 1)] = t;
  }
  const step = Number(metadata.step);
  if (!Number.isInteger(step) || step < 0)
    throw new BadInputError('ShapeMismatch', `${key}: bad step '${metadata.step}' in checkpoint`);
  return {
    params: groups.params,
    optimizer: { step, m: groups.m, v: groups.v, ema: Object.keys(groups.ema).length ? groups.ema : null },
    losses: JSON.parse(metadata.losses ?? '[]') as number[],
    pendingLoss: JSON.parse(metadata.pendingLoss ?? '[0, 0]') as [number, number],
  };
}
