/**
 * `diffem retrain CONFIG --store URI --schedule NAME [--warm-laps N]`: one tick of a
 * retraining schedule on the embedded engine (run it from cron, e.g. nightly): trains the
 * next campaign of the schedule on everything in `data.source`, warm-started from the last
 * successful one, or records "no new data" and ends. See engines/lineage.ts.
 *
 * `diffem simulate CONFIG --part NAME --count N --out FILE`: observation files for a growing
 * source, drawn from the config's curve (stream `simulate/NAME`), to try retraining without
 * data of one's own.
 */
import { parseArgs } from 'node:util';
import { domainOf } from '../activities/index.js';
import { loadConfigFile } from '../engines/config-file.js';
import { planRetraining, recordTick } from '../engines/lineage.js';
import { runLocalCampaign } from '../engines/local/engine.js';
import { ConsoleProgress, formatMetrics } from '../engines/local/progress.js';
import { encodeSafetensors } from '../models/safetensors.js';
import { storeFor } from '../store/open.js';
import { writeFileWhole } from '../engines/final-models.js';
import { parseCount } from './options.js';

export const RETRAIN_USAGE = 'diffem retrain CONFIG.yaml --store URI --schedule NAME [--warm-laps N]';
export const SIMULATE_USAGE = 'diffem simulate CONFIG.yaml --part NAME --count N --out FILE.safetensors';

export async function retrainCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { store: { type: 'string' }, schedule: { type: 'string' }, 'warm-laps': { type: 'string' } },
  });
  if (positionals.length !== 1 || !values.store || !values.schedule) throw new Error(`usage: ${RETRAIN_USAGE}`);
  const config = await loadConfigFile(positionals[0]);
  const warmLaps = values['warm-laps'] === undefined ? undefined : parseCount(values['warm-laps'], '--warm-laps');
  const store = storeFor(values.store);
  const plan = await planRetraining(store, values.schedule, config, warmLaps);
  const files = `${plan.snapshot.files.length} files, snapshot ${plan.snapshot.digest.slice(0, 12)}`;
  if (plan.action === 'no new data') {
    await recordTick(store, values.schedule, plan);
    process.stdout.write(
      `schedule ${values.schedule}: no new data in ${plan.snapshot.source} since ${plan.last} (${files}); nothing trained\n`,
    );
    return;
  }
  process.stderr.write(
    `diffem: schedule ${values.schedule}: ${plan.resume ? 'resuming' : 'training'} ${plan.campaignId} on ${files}` +
      `${plan.parent ? `, warm-started from ${plan.parent}` : ', from the Gaussian lap 0'} (${plan.config.em.laps} laps)\n`,
  );
  const summary = await runLocalCampaign({
    store: values.store,
    campaignId: plan.campaignId,
    config: plan.config,
    progress: new ConsoleProgress(),
  });
  if (!plan.resume) await recordTick(store, values.schedule, plan);
  process.stdout.write(
    `schedule ${values.schedule}: trained ${plan.campaignId}${plan.parent ? ` from ${plan.parent}` : ''} on ${files}: ${summary.laps} laps\n` +
      `  final reconstructions: ${formatMetrics(summary.lastMetrics)}\n` +
      `  prior samples:         ${formatMetrics(summary.priorMetrics)}\n` +
      `  chain: diffem history ${plan.campaignId} --store ${values.store}\n`,
  );
}

export async function simulateCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { part: { type: 'string' }, count: { type: 'string' }, out: { type: 'string' } },
  });
  if (positionals.length !== 1 || !values.part || !values.count || !values.out)
    throw new Error(`usage: ${SIMULATE_USAGE}`);
  const config = await loadConfigFile(positionals[0]);
  const simulate = domainOf(config).simulateObservations;
  if (!simulate) throw new Error(`${positionals[0]}: simulate draws vector observations (data kind manifold)`);
  const count = parseCount(values.count, '--count');
  const tensors = simulate(values.part, count);
  await writeFileWhole(values.out, encodeSafetensors(tensors, { seed: String(config.seed), part: values.part }));
  process.stdout.write(`wrote ${values.out}: ${count} observations (seed ${config.seed}, part ${values.part})\n`);
}
