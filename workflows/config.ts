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
});

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
  timeDistribution: z.enum(['beta33', 'beta-mixture', 'uniform']).default('beta-mixture'),
  checkpointEvery: positiveInt.default(250),
});

export const campaignConfigSchema = z.strictObject({
  /** Root of every random draw of the campaign. */
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  method: z.enum(['diffem', 'emmps']).default('diffem'),
  data: manifoldData,
  channel: z.discriminatedUnion('kind', [projectionChannelConfig, maskChannelConfig]),
  schedule: z
    .strictObject({ sigmaMin: z.number().positive().default(1e-3), sigmaMax: z.number().positive().default(10) })
    .refine((s) => s.sigmaMax > s.sigmaMin, { message: 'sigmaMax must exceed sigmaMin', path: ['sigmaMax'] })
    .default({ sigmaMin: 1e-3, sigmaMax: 10 }),
  model: z
    .strictObject({ hidden: z.array(positiveInt).min(1).default([256, 256, 256]), embedDim: positiveInt.default(64) })
    .refine((m) => m.embedDim % 2 === 0, { message: 'embedDim must be even', path: ['embedDim'] })
    .default({ hidden: [256, 256, 256], embedDim: 64 }),
  em: z
    .strictObject({
      /** DiffEM laps after lap 0. */
      laps: z.number().int().nonnegative().default(8),
      gaussianIterations: positiveInt.default(32),
      shardSize: positiveInt.default(4096),
      /** Shards sampled at once. */
      concurrency: positiveInt.default(2),
    })
    .default({ laps: 8, gaussianIterations: 32, shardSize: 4096, concurrency: 2 }),
  estep: z
    .strictObject({ steps: positiveInt.default(64), mmpsCgIterations: positiveInt.default(3) })
    .default({ steps: 64, mmpsCgIterations: 3 }),
  training: trainingConfig.default(trainingConfig.parse({})),
  prior: z
    .strictObject({
      steps: positiveInt.default(2000),
      samples: positiveInt.default(4096),
      samplerSteps: positiveInt.default(64),
    })
    .default({ steps: 2000, samples: 4096, samplerSteps: 64 }),
  metrics: z
    .strictObject({
      /** Points per cloud in the Sinkhorn divergence. */
      samples: positiveInt.default(1024),
      sinkhornBlur: z.number().positive().default(0.05),
      /** Distance under which a curve point counts as covered. */
      coverageRadius: z.number().positive().default(0.1),
    })
    .default({ samples: 1024, sinkhornBlur: 0.05, coverageRadius: 0.1 }),
  runtime: z
    .strictObject({
      device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
      /** Threads of ONNX Runtime per sampling activity (0: all cores). */
      threads: z.number().int().nonnegative().default(0),
    })
    .default({ device: 'auto', threads: 0 }),
});

export type CampaignConfig = z.infer<typeof campaignConfigSchema>;

export class ConfigError extends Error {
  readonly type = 'InvalidConfig';
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(message);
  }
}

/** Validates a parsed document; the error lists every bad field by its path. */
export function parseCampaignConfig(document: unknown, source = 'config'): CampaignConfig {
  const result = campaignConfigSchema.safeParse(document);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.join('.') : '(root)';
    const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.map((k) => `${path === '(root)' ? '' : path + '.'}${k}`).join(', ')})` : '';
    return `${path}: ${issue.message}${keys}`;
  });
  return failWith(source, issues);
}

function failWith(source: string, issues: string[]): never {
  throw new ConfigError(`invalid campaign config ${source}:\n  ${issues.join('\n  ')}`, issues);
}
