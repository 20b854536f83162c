/**
 * Upper bounds on the sizes a config asks for, checked when a config file is read, so that a
 * config (mistyped or hostile) cannot make a worker allocate without limit: the schema checks
 * that sizes are positive integers, these check that the arrays they imply fit in memory.
 * Each bound is far above the campaigns the method is run on (CIFAR-10: 50 000 x 3072 =
 * 1.5e8 values; the paper's MLP: width 256).
 */
import { ConfigError, type CampaignConfig } from '../workflows/config.js';

/** float32 values in one array: 2^30 values = 4 GiB. */
export const MAX_ARRAY_VALUES = 2 ** 30;
export const MAX_LAYER_WIDTH = 1 << 16;

export function checkConfigLimits(config: CampaignConfig, source: string): CampaignConfig {
  const issues: string[] = [];
  const dim = config.data.dim;
  const values = (field: string, rows: number) => {
    if (rows * dim > MAX_ARRAY_VALUES) {
      issues.push(`${field}: ${rows} x dim ${dim} = ${rows * dim} values exceeds the limit of ${MAX_ARRAY_VALUES}`);
    }
  };
  values('data.count', config.data.count);
  values('training.batchSize', config.training.batchSize);
  if (config.prior.batchSize !== undefined) values('prior.batchSize', config.prior.batchSize);
  values('prior.samples', config.prior.samples);
  values('metrics.samples', config.metrics.samples);
  const widths = config.model.kind === 'unet' ? config.model.levels : config.model.hidden;
  widths.forEach((width, i) => {
    const field = `model.${config.model.kind === 'unet' ? 'levels' : 'hidden'}.${i}`;
    if (width > MAX_LAYER_WIDTH) issues.push(`${field}: width ${width} exceeds the limit of ${MAX_LAYER_WIDTH}`);
  });
  if (issues.length > 0) throw new ConfigError(`${source}: ${issues.join('; ')}`, issues);
  return config;
}
