/**
 * The campaign configuration: one validated document (YAML on disk) that fixes everything a
 * campaign computes, including its `seed`. Unknown fields are errors (a misspelt setting
 * silently falling back to a default would waste a long run), and every error names the
 * field's path. Pure code: the workflow sandbox imports it too.
 */
import { z } from 'zod';

const positiveInt = z.number().int().positive();

const manifoldData = z.strictObject({
  kind: z.literal('manifold'),
  /** Dimension of x. */
  dim: positiveInt.default(5),
  /** Number of observations. */
  count: positiveInt.default(8192),
  /** Terms of the random Fourier curve. */
  terms: positiveInt.default(10),
  /**
   * Observations from files instead of drawn: a directory or s3://bucket/prefix of
   * .safetensors files, each with `y` [n, obsDim] and `A` [n, obsDim, dim], that may grow
   * between campaigns. Each campaign snapshots the files it saw (names and sha256) and learns
   * from all of them; `count` is then ignored. The curve (evaluation only) is still drawn
   * from the seed.
   */
  source: z.string().min(1).optional(),
});

/** Observation counts shared by the image data kinds. */
const imageCounts = {
  /** Observations: a subset of the train split, drawn by a permutation from stream `subset`. */
  count: positiveInt.default(10000),
  /** Clean images of the test split (or held out of an unsplit source) for the metrics. */
  heldout: positiveInt.default(1000),
};

/** `dim` of an image kind is H W C; derived, accepted only when it agrees (re-parsing a parsed config). */
function withImageDim<T extends { height: number; width: number; channels: number; dim?: number }>(
  d: T,
  ctx: z.RefinementCtx,
): Omit<T, 'dim'> & { dim: number } {
  const dim = d.height * d.width * d.channels;
  if (d.dim !== undefined && d.dim !== dim) {
    ctx.addIssue({ code: 'custom', path: ['dim'], message: `dim is H*W*C = ${dim} for these images, got ${d.dim}` });
  }
  return { ...d, dim };
}

const mnistLikeData = (kind: 'mnist' | 'fashion-mnist') =>
  z
    .strictObject({
      kind: z.literal(kind),
      ...imageCounts,
      /** A directory of the official IDX files (optionally .gz) instead of the npm package. */
      path: z.string().min(1).optional(),
      height: z.literal(28).default(28),
      width: z.literal(28).default(28),
      channels: z.literal(1).default(1),
      dim: positiveInt.optional(),
    })
    .transform(withImageDim);

const cifar10Data = z
  .strictObject({
    kind: z.literal('cifar10'),
    count: positiveInt.default(50000),
    heldout: positiveInt.default(10000),
    /** Directory holding `cifar-10-batches-bin/` (or the archive to unpack). */
    path: z.string().min(1),
    /** Download the archive (170 MB, MD5-checked) into `path` when the batches are missing. */
    download: z.boolean().default(false),
    height: z.literal(32).default(32),
    width: z.literal(32).default(32),
    channels: z.literal(3).default(3),
    dim: positiveInt.optional(),
  })
  .transform(withImageDim);

const folderData = z
  .strictObject({
    kind: z.literal('folder'),
    ...imageCounts,
    /** A directory of PNG / JPEG files (loaded in name order, scaled and centre-cropped). */
    path: z.string().min(1),
    height: positiveInt,
    width: positiveInt,
    channels: z.union([z.literal(1), z.literal(3)]),
    dim: positiveInt.optional(),
  })
  .transform(withImageDim);

const IMAGE_DATA_KINDS = ['mnist', 'fashion-mnist', 'cifar10', 'folder'] as const;
const IMAGE_CHANNEL_KINDS = ['pixel-mask', 'blur'] as const;

const projectionChannelConfig = z.strictObject({
  kind: z.literal('projection'),
  obsDim: positiveInt.default(2),
  noiseStd: z.number().positive().default(1e-2),
});

const maskChannelConfig = z.strictObject({
  kind: z.literal('mask'),
  /** Probability that a coordinate is observed. */
  keep: z.number().gt(0).max(1).default(0.5),
  noiseStd: z.number().positive().default(1e-2),
});

/** Each pixel removed with probability `rate`, the same pixel in every colour channel. */
const pixelMaskChannelConfig = z.strictObject({
  kind: z.literal('pixel-mask'),
  /** Fraction of pixels removed, in [0, 1). */
  rate: z.number().min(0).lt(1).default(0.5),
  noiseStd: z.number().positive().default(1e-3),
});

/** Gaussian blur with a separable kernel; `sigma` fixed or drawn per image from [lo, hi]. */
const blurChannelConfig = z
  .strictObject({
    kind: z.literal('blur'),
    kernelSize: positiveInt.default(9),
    sigma: z.union([z.number().positive(), z.tuple([z.number().positive(), z.number().positive()])]).default(1),
    padding: z.enum(['reflect', 'zero']).default('reflect'),
    noiseStd: z.number().positive().default(1e-3),
  })
  .refine((b) => b.kernelSize % 2 === 1, { message: 'kernelSize must be odd', path: ['kernelSize'] })
  .refine((b) => typeof b.sigma === 'number' || b.sigma[1] >= b.sigma[0], {
    message: 'sigma range [lo, hi] needs hi >= lo',
    path: ['sigma'],
  });

const mlpModelConfig = z
  .strictObject({
    kind: z.literal('mlp'),
    hidden: z.array(positiveInt).min(1).default([256, 256, 256]),
    embedDim: positiveInt.default(64),
  })
  .refine((m) => m.embedDim % 2 === 0, { message: 'embedDim must be even', path: ['embedDim'] });

/** The U-Net of `models/denoisers/unet.ts`; the image size and conditioning come from data and channel. */
const unetModelObject = z.strictObject({
  kind: z.literal('unet'),
  /** Feature channels per resolution level, finest first (each level halves the image). */
  levels: z.array(positiveInt).min(1).default([32, 64, 64]),
  blocksPerLevel: positiveInt.default(1),
  /** Indices into `levels` with self-attention (the middle block always has one). */
  attentionLevels: z.array(z.number().int().nonnegative()).default([]),
  embedDim: positiveInt.default(64),
  dropout: z.number().min(0).lt(1).default(0),
  groups: positiveInt.default(8),
  downsample: z.enum(['conv', 'avgpool']).default('conv'),
});
const unetModelFields = unetModelObject.shape;

/** The U-Net's cross-field checks, reported under `path` (the model, or the prior's override of it). */
function checkUnetModel(m: z.infer<typeof unetModelObject>, ctx: z.RefinementCtx, path: string[]): void {
  if (m.embedDim % 2 !== 0)
    ctx.addIssue({ code: 'custom', path: [...path, 'embedDim'], message: 'embedDim must be even' });
  m.levels.forEach((c, i) => {
    if (c % m.groups !== 0)
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'levels', i],
        message: `${m.groups} groups do not divide ${c} channels`,
      });
  });
  m.attentionLevels.forEach((l, i) => {
    if (l >= m.levels.length)
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'attentionLevels', i],
        message: `level ${l} does not exist (${m.levels.length} levels)`,
      });
  });
}

const unetModelConfig = unetModelObject.superRefine((m, ctx) => checkUnetModel(m, ctx, []));

const MODEL_DEFAULT = { kind: 'mlp' as const, hidden: [256, 256, 256], embedDim: 64 };

const fidConfig = z.strictObject({
  /**
   * Features of the FID: 'mnist-classifier', the project's small classifier trained once per
   * campaign (at prepare time) on the clean train images outside the observed subset (needs
   * labelled data); 'inception', Inception-v3 from the ONNX file `inceptionOnnx`; 'none'.
   */
  features: z.enum(['mnist-classifier', 'inception', 'none']).default('mnist-classifier'),
  inceptionOnnx: z.string().min(1).optional(),
  classifierSteps: positiveInt.default(500),
  /** The reference statistics' images: the clean train split (the papers' protocol) or the held-out test images. */
  reference: z.enum(['train', 'heldout']).default('train'),
  /** At most this many train images in the reference (default: the whole split). */
  referenceCount: positiveInt.optional(),
  /** The Inception Score of the same samples beside the FID, from the feature model's logits. */
  inceptionScore: z.boolean().default(false),
  /** features 'inception': the ONNX output holding the class logits (needed by `inceptionScore`). */
  inceptionLogits: z.string().min(1).optional(),
});

const trainingConfig = z.strictObject({
  /** Adam steps of each M-step. */
  steps: positiveInt.default(1000),
  /** Adam steps of lap 0's fresh model (default: `steps`). */
  firstSteps: positiveInt.optional(),
  batchSize: positiveInt.default(1024),
  lr: z.number().positive().default(1e-3),
  lrSchedule: z.enum(['constant', 'cosine']).default('cosine'),
  clip: z.number().nonnegative().default(1),
  emaDecay: z.number().min(0).lt(1).default(0.999),
  /**
   * Steps of the EMA's warm-up, d_t = min(emaDecay, (1 + t) / (10 + t)); from then on the
   * decay is `emaDecay` as configured (the ramp alone would need 8,990 steps to reach 0.999).
   */
  emaWarmup: positiveInt.default(100),
  /** Default: 'beta-mixture' (DiffEM's tuned distribution) for vectors, 'beta33' for images. */
  timeDistribution: z.enum(['beta33', 'beta-mixture', 'uniform', 'lognormal']).default('beta-mixture'),
  checkpointEvery: positiveInt.default(250),
  /**
   * Slices of each minibatch whose gradients are computed apart (on as many threads as the
   * machine allows) and averaged in a fixed order. Part of the numerics: the same value
   * gives bit-identical weights on any number of threads. Absent (as 1): one thread, and a
   * config digest unchanged from before the option existed.
   */
  gradientShards: positiveInt.optional(),
});

/**
 * The final prior's own training recipe, each field falling back to `training`'s
 * (`priorTraining`): the prior is a fresh unconditional network trained once on the final
 * reconstructions, so its best batch, learning rate or EMA need not be the M-step's, which
 * warm-starts every lap from the previous one.
 */
const recipeField = trainingConfig.shape;
const priorRecipe = z.strictObject({
  batchSize: recipeField.batchSize.unwrap().optional(),
  lr: recipeField.lr.unwrap().optional(),
  lrSchedule: recipeField.lrSchedule.unwrap().optional(),
  clip: recipeField.clip.unwrap().optional(),
  emaDecay: recipeField.emaDecay.unwrap().optional(),
  emaWarmup: recipeField.emaWarmup.unwrap().optional(),
  timeDistribution: recipeField.timeDistribution.unwrap().optional(),
  gradientShards: recipeField.gradientShards,
});

/**
 * The final prior's own network size, each field falling back to `model`'s (`priorModel`):
 * the prior is trained once, from scratch, and is the campaign's product, so it may be wider
 * or deeper than the conditional network that is retrained every lap. Its kind is the
 * campaign's; the fields are the U-Net's or the MLP's.
 */
const priorModelFields = z.strictObject({
  hidden: mlpModelConfig.shape.hidden.unwrap().optional(),
  embedDim: positiveInt.optional(),
  levels: unetModelFields.levels.unwrap().optional(),
  blocksPerLevel: positiveInt.optional(),
  attentionLevels: unetModelFields.attentionLevels.unwrap().optional(),
  dropout: unetModelFields.dropout.unwrap().optional(),
  groups: positiveInt.optional(),
  downsample: unetModelFields.downsample.unwrap().optional(),
});

export type PriorModelOverride = z.infer<typeof priorModelFields>;

const MLP_FIELDS: ReadonlySet<string> = new Set(['hidden', 'embedDim']);

/** `prior.model` names only fields of the campaign's network kind, and the merged network is a valid one. */
function checkPriorModel(
  config: {
    model: z.infer<typeof mlpModelConfig> | z.infer<typeof unetModelConfig>;
    prior: { model?: PriorModelOverride };
  },
  ctx: z.RefinementCtx,
): void {
  const path = ['prior', 'model'];
  for (const field of Object.keys(config.prior.model ?? {})) {
    const mlpField = MLP_FIELDS.has(field);
    if (config.model.kind === 'mlp' ? !mlpField : field === 'hidden') {
      ctx.addIssue({
        code: 'custom',
        path: [...path, field],
        message: `'${field}' is not a field of the campaign's ${config.model.kind} (model.kind); the prior's network is the same kind`,
      });
    }
  }
  const merged = priorModel(config);
  if (merged.kind === 'unet') checkUnetModel(merged, ctx, path);
  else if (merged.embedDim % 2 !== 0)
    ctx.addIssue({ code: 'custom', path: [...path, 'embedDim'], message: 'embedDim must be even' });
}

/** The final prior's network: `model` with the fields `prior.model` sets replaced. */
export function priorModel<C extends { model: { kind: string }; prior: { model?: PriorModelOverride } }>(
  config: C,
): C['model'] {
  const override = config.prior.model;
  if (override === undefined) return config.model;
  return { ...config.model, ...override };
}

/** The fields of `training` that `prior` may set for the final prior alone. */
export type PriorRecipe = z.infer<typeof priorRecipe>;

type TrainingConfig = z.infer<typeof trainingConfig>;

/**
 * The recipe the final prior trains with: `training`, with each field `prior` sets replaced.
 * Without overrides it serialises as `training` does (same keys, same order), so the prior's training digest, and with it the resumption of a campaign started
 * before the overrides existed, is unchanged.
 */
export function priorTraining(config: { training: TrainingConfig; prior: PriorRecipe }): TrainingConfig {
  const { training, prior } = config;
  return {
    ...training,
    batchSize: prior.batchSize ?? training.batchSize,
    lr: prior.lr ?? training.lr,
    lrSchedule: prior.lrSchedule ?? training.lrSchedule,
    clip: prior.clip ?? training.clip,
    emaDecay: prior.emaDecay ?? training.emaDecay,
    emaWarmup: prior.emaWarmup ?? training.emaWarmup,
    timeDistribution: prior.timeDistribution ?? training.timeDistribution,
    ...(prior.gradientShards !== undefined && { gradientShards: prior.gradientShards }),
  };
}

/**
 * The campaign's activities by name (workflows/types.ts CampaignActivities; workflows/temporal.ts
 * checks at compile time that the two lists agree).
 */
export const ACTIVITY_NAMES = [
  'prepareData',
  'shardDataset',
  'initializeGaussian',
  'trainConditional',
  'posteriorSample',
  'evaluate',
  'trainPrior',
  'samplePrior',
  'renderFigures',
  'recordLap',
  'finishCampaign',
] as const;

/** A duration as Temporal reads it: digits and a unit. */
export const durationText = z
  .string()
  .regex(/^\d+(?:ms|s|m|h|d)$/, 'must be a duration: digits and a unit (ms, s, m, h, d), such as 90s, 30m or 12h');

/**
 * `runtime.timeouts`: per activity, the longest attempt (startToClose), the longest silence
 * between heartbeats before the attempt counts as lost (heartbeat), and the attempts before
 * the campaign fails. The embedded engine ignores them: it has no lost workers to detect.
 */
const activityTimeouts = z.partialRecord(
  z.enum(ACTIVITY_NAMES),
  z.strictObject({
    startToClose: durationText.optional(),
    heartbeat: durationText.optional(),
    maximumAttempts: positiveInt.optional(),
  }),
);

export const campaignConfigSchema = z
  .strictObject({
    /** Root of every random draw of the campaign. */
    seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    method: z.enum(['diffem', 'emmps']).default('diffem'),
    /** Warm start: lap 0 samples with, and trains on from, this campaign's final conditional model (same store). */
    init: z.strictObject({ from: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a campaign id') }).optional(),
    data: z.discriminatedUnion('kind', [
      manifoldData,
      mnistLikeData('mnist'),
      mnistLikeData('fashion-mnist'),
      cifar10Data,
      folderData,
    ]),
    channel: z.discriminatedUnion('kind', [
      projectionChannelConfig,
      maskChannelConfig,
      pixelMaskChannelConfig,
      blurChannelConfig,
    ]),
    /** sigmaMax defaults to 10 for vectors and to 1e2 for images (`IMAGE_DEFAULTS`). */
    schedule: z
      .strictObject({ sigmaMin: z.number().positive().default(1e-3), sigmaMax: z.number().positive().default(10) })
      .refine((s) => s.sigmaMax > s.sigmaMin, { message: 'sigmaMax must exceed sigmaMin', path: ['sigmaMax'] })
      .default({ sigmaMin: 1e-3, sigmaMax: 10 }),
    /** `kind` defaults to 'mlp', so the manifold configs written before the U-Net parse unchanged. */
    model: z
      .preprocess(
        (m) => (m && typeof m === 'object' && !Array.isArray(m) && !('kind' in m) ? { kind: 'mlp', ...m } : m),
        z.discriminatedUnion('kind', [mlpModelConfig, unetModelConfig]),
      )
      .default(MODEL_DEFAULT),
    em: z
      .strictObject({
        /** DiffEM laps after lap 0. */
        laps: z.number().int().nonnegative().default(8),
        gaussianIterations: positiveInt.default(32),
        /** Images only: rank of the lap-0 Gaussian's covariance factor. */
        gaussianRank: positiveInt.default(32),
        shardSize: positiveInt.default(4096),
        /** Shards sampled at once. */
        concurrency: positiveInt.default(2),
      })
      .default({ laps: 8, gaussianIterations: 32, gaussianRank: 32, shardSize: 4096, concurrency: 2 }),
    estep: z
      .strictObject({
        steps: positiveInt.default(64),
        /**
         * EM-MMPS: Krylov iterations of each guidance solve. Absent: an exact solve (m
         * iterations, m the observation size) when m <= 64, as the authors solve small
         * systems fully, else 3 (the paper's range is 1 to 3 for images).
         */
        mmpsCgIterations: positiveInt.optional(),
        /** EM-MMPS: the solver of the guidance's m x m systems (CG as in the paper, or GMRES). */
        mmpsSolver: z.enum(['cg', 'gmres']).default('cg'),
      })
      .default({ steps: 64, mmpsSolver: 'cg' }),
    training: trainingConfig.default(trainingConfig.parse({})),
    prior: z
      .strictObject({
        steps: positiveInt.default(2000),
        samples: positiveInt.default(4096),
        samplerSteps: positiveInt.default(64),
        ...priorRecipe.shape,
        model: priorModelFields.optional(),
      })
      .default({ steps: 2000, samples: 4096, samplerSteps: 64 }),
    metrics: z
      .strictObject({
        /** Points per cloud in the Sinkhorn divergence. */
        samples: positiveInt.default(1024),
        sinkhornBlur: z.number().positive().default(0.05),
        /** Distance under which a curve point counts as covered. */
        coverageRadius: z.number().positive().default(0.1),
        /** Images only: the Frechet distance's feature extractor. */
        fid: fidConfig.default(fidConfig.parse({})),
      })
      .default({ samples: 1024, sinkhornBlur: 0.05, coverageRadius: 0.1, fid: fidConfig.parse({}) }),
    runtime: z
      .strictObject({
        device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
        /**
         * CPU training kernels: 'portable' (absent; the same bits on every machine) or 'fast'
         * (fused layers, OpenBLAS matrix products where installed; bits may differ by CPU).
         */
        kernels: z.enum(['portable', 'fast']).optional(),
        /** Threads of ONNX Runtime per sampling activity (0: all cores). */
        threads: z.number().int().nonnegative().default(0),
        /** Rows per ONNX Runtime run (default: 4096 for vectors, 128 for images). */
        batchSize: positiveInt.optional(),
        /** Temporal engine only: per-activity timeouts over its defaults (docs/temporal.md). */
        timeouts: activityTimeouts.optional(),
      })
      .default({ device: 'auto', threads: 0 }),
  })
  .superRefine((config, ctx) => {
    // Cross-field checks: each names the field to change.
    if (config.training.batchSize % (config.training.gradientShards ?? 1) !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'gradientShards'],
        message: `training.batchSize (${config.training.batchSize}) must be a multiple of training.gradientShards (${config.training.gradientShards ?? 1})`,
      });
    }
    const prior = priorTraining(config);
    if (
      (config.prior.batchSize !== undefined || config.prior.gradientShards !== undefined) &&
      prior.batchSize % (prior.gradientShards ?? 1) !== 0
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['prior', config.prior.gradientShards !== undefined ? 'gradientShards' : 'batchSize'],
        message: `the prior's batch size (${prior.batchSize}) must be a multiple of its gradient shards (${prior.gradientShards ?? 1}); prior.batchSize and prior.gradientShards fall back to training's`,
      });
    }
    const imageData = isImageDataKind(config.data.kind);
    if (config.prior.model !== undefined) checkPriorModel(config, ctx);
    const imageChannel = (IMAGE_CHANNEL_KINDS as readonly string[]).includes(config.channel.kind);
    if (imageData && !imageChannel) {
      ctx.addIssue({
        code: 'custom',
        path: ['channel', 'kind'],
        message: `image data (${config.data.kind}) needs an image channel (${IMAGE_CHANNEL_KINDS.join(' | ')}), got '${config.channel.kind}'`,
      });
    }
    if (!imageData && imageChannel) {
      ctx.addIssue({
        code: 'custom',
        path: ['channel', 'kind'],
        message: `'${config.channel.kind}' corrupts images; vector data (${config.data.kind}) takes 'projection' or 'mask'`,
      });
    }
    if (imageData && config.model.kind !== 'unet') {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'kind'],
        message: `image data (${config.data.kind}) needs model kind 'unet', got '${config.model.kind}'`,
      });
    }
    if (!imageData && config.model.kind !== 'mlp') {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'kind'],
        message: `vector data (${config.data.kind}) needs model kind 'mlp', got '${config.model.kind}'`,
      });
    }
    if (config.data.kind === 'folder' && config.model.kind === 'unet') {
      const levels = config.model.levels.length;
      if (Math.min(config.data.height, config.data.width) < 2 ** (levels - 1)) {
        ctx.addIssue({
          code: 'custom',
          path: ['model', 'levels'],
          message: `${levels} levels halve a ${config.data.height}x${config.data.width} image too often`,
        });
      }
    }
    if (config.init && config.method !== 'diffem') {
      ctx.addIssue({
        code: 'custom',
        path: ['init', 'from'],
        message: "a warm start continues DiffEM's conditional model: method must be 'diffem'",
      });
    }
    const fid = config.metrics.fid;
    if (imageData && fid.features === 'mnist-classifier' && config.data.kind === 'folder') {
      ctx.addIssue({
        code: 'custom',
        path: ['metrics', 'fid', 'features'],
        message: "'mnist-classifier' trains on labels, and a folder has none: use 'inception' or 'none'",
      });
    }
    if (fid.inceptionScore && fid.features === 'inception' && !fid.inceptionLogits) {
      ctx.addIssue({
        code: 'custom',
        path: ['metrics', 'fid', 'inceptionLogits'],
        message: 'inceptionScore with Inception features needs the name of the ONNX output holding the logits',
      });
    }
    if (fid.features === 'inception' && !fid.inceptionOnnx) {
      ctx.addIssue({
        code: 'custom',
        path: ['metrics', 'fid', 'inceptionOnnx'],
        message: "features 'inception' needs the path of an Inception-v3 ONNX file",
      });
    }
    if (config.channel.kind === 'blur' && config.data.kind !== 'manifold') {
      const radius = (config.channel.kernelSize - 1) / 2;
      const side = Math.min(config.data.height, config.data.width);
      if (config.channel.padding === 'reflect' && radius > side - 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['channel', 'kernelSize'],
          message: `reflect padding needs kernel radius ${radius} < image side ${side}`,
        });
      }
    }
  });

export type ImageDataKind = (typeof IMAGE_DATA_KINDS)[number];

export function isImageDataKind(kind: string): kind is ImageDataKind {
  return (IMAGE_DATA_KINDS as readonly string[]).includes(kind);
}

/** The validated document, before it is narrowed to the vector or the image kind. */
type CampaignDocument = z.infer<typeof campaignConfigSchema>;

type DataConfig = CampaignDocument['data'];
type ChannelConfig = CampaignDocument['channel'];
type ModelConfig = CampaignDocument['model'];
export type ImageDataConfig = Extract<DataConfig, { kind: ImageDataKind }>;
export type ImageChannelSettings = Extract<ChannelConfig, { kind: 'pixel-mask' | 'blur' }>;
export type VectorChannelSettings = Extract<ChannelConfig, { kind: 'projection' | 'mask' }>;
export type UnetModelConfig = Extract<ModelConfig, { kind: 'unet' }>;
export type MlpModelConfig = Extract<ModelConfig, { kind: 'mlp' }>;

/** A campaign on vectors (the manifold): a vector channel and the MLP. */
export type VectorCampaignConfig = Omit<CampaignDocument, 'data' | 'channel' | 'model'> & {
  data: Extract<DataConfig, { kind: 'manifold' }>;
  channel: VectorChannelSettings;
  model: MlpModelConfig;
};
/** A campaign on images: an image channel and the U-Net. */
export type ImageCampaignConfig = Omit<CampaignDocument, 'data' | 'channel' | 'model'> & {
  data: ImageDataConfig;
  channel: ImageChannelSettings;
  model: UnetModelConfig;
};

/** A campaign's configuration: one of two kinds, told apart by `data.kind`. */
export type CampaignConfig = VectorCampaignConfig | ImageCampaignConfig;

/** The one test of a config's kind; callers branch once (activities/domain.ts) and pass the narrowed config on. */
export function isImageConfig(config: CampaignConfig): config is ImageCampaignConfig {
  return config.data.kind !== 'manifold';
}

/**
 * Narrows a document that passed the cross-field checks to its kind. Those checks pair data,
 * channel and model, so the last branch is reached only by a schema change that forgot them.
 */
function narrowConfig(document: CampaignDocument, source: string): CampaignConfig {
  const { data, channel, model } = document;
  if (data.kind === 'manifold' && (channel.kind === 'projection' || channel.kind === 'mask') && model.kind === 'mlp') {
    return { ...document, data, channel, model };
  }
  if (data.kind !== 'manifold' && (channel.kind === 'pixel-mask' || channel.kind === 'blur') && model.kind === 'unet') {
    return { ...document, data, channel, model };
  }
  return failWith(source, [
    `data/channel/model: '${data.kind}', '${channel.kind}' and '${model.kind}' do not make a campaign`,
  ]);
}

export class ConfigError extends Error {
  readonly type = 'InvalidConfig';
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(message);
  }
}

/** Defaults that depend on the data's kind: images take sigma_max = 1e2 and Beta(3,3), as the papers' image runs. */
export const IMAGE_DEFAULTS = { sigmaMax: 100, timeDistribution: 'beta33' } as const;

function withKindDefaults(document: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(document) || !isObject(document.data) || typeof document.data.kind !== 'string') return document;
  if (!isImageDataKind(document.data.kind)) return document;
  const schedule = isObject(document.schedule) ? document.schedule : document.schedule === undefined ? {} : null;
  const training = isObject(document.training) ? document.training : document.training === undefined ? {} : null;
  return {
    ...document,
    ...(schedule ? { schedule: { sigmaMax: IMAGE_DEFAULTS.sigmaMax, ...schedule } } : {}),
    ...(training ? { training: { timeDistribution: IMAGE_DEFAULTS.timeDistribution, ...training } } : {}),
  };
}

/** Validates a parsed document; the error lists every bad field by its path. */
export function parseCampaignConfig(document: unknown, source = 'config'): CampaignConfig {
  const result = campaignConfigSchema.safeParse(withKindDefaults(document));
  if (result.success) return narrowConfig(result.data, source);
  const issues = result.error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.join('.') : '(root)';
    const keys =
      issue.code === 'unrecognized_keys'
        ? ` (${issue.keys.map((k) => `${path === '(root)' ? '' : path + '.'}${k}`).join(', ')})`
        : '';
    return `${path}: ${issue.message}${keys}`;
  });
  return failWith(source, issues);
}

function failWith(source: string, issues: string[]): never {
  throw new ConfigError(`invalid campaign config ${source}:\n  ${issues.join('\n  ')}`, issues);
}
