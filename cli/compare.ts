/**
 * `diffem compare CONFIG --store URI [--id ID] [--out FILE] [--same-settings]`: DiffEM
 * against its baseline EM-MMPS on the same corrupted data. Two campaigns, `ID-diffem` and
 * `ID-emmps`: the same seed gives the same data (checked: the digests of their
 * observations' values must be equal), and both run the same laps, training steps and
 * E-step sampler steps. Each method trains on its own authors' time distribution (DiffEM
 * the config's, EM-MMPS Beta(3,3) as in Rozet et al.) and EM-MMPS solves its guidance as
 * the config says (an exact solve for small m by default), unless `--same-settings` hands
 * both the shared config unchanged; the record and the report say what each used. The
 * E-step's cost is recorded per lap as network evaluations, and training's beside it, which
 * the report puts on the x axis (the equal-compute view).
 * Writes `campaigns/ID/comparison.json` and the report `campaigns/ID/report.html`.
 * Re-running resumes: finished steps of either campaign are not run again.
 */
import { parseArgs } from 'node:util';
import { storeFor } from '../store/open.js';
import { putJson } from '../store/store.js';
import { runLocalCampaign } from '../engines/local/engine.js';
import { validateCampaignId } from '../engines/records.js';
import { ConsoleProgress, formatMetrics, type ProgressSink } from '../engines/local/progress.js';
import type { CampaignConfig } from '../workflows/config.js';
import { loadConfigFile } from '../engines/config-file.js';
import type { CampaignActivities } from '../workflows/types.js';
import { campaignHistory } from './history.js';
import {
  comparisonKey,
  loadFinalStage,
  observationsDigest,
  type ComparisonRecord,
  type ComparisonRun,
  describeSettings,
  methodSettings,
} from './report-data.js';
import { writeReport } from './report.js';
import { writeOutFile } from './out-file.js';

export const COMPARE_USAGE = 'diffem compare CONFIG.yaml --store URI [--id ID] [--out FILE] [--same-settings]';

export type Method = CampaignConfig['method'];

export const METHODS: readonly Method[] = ['diffem', 'emmps'];

export interface ComparisonOptions {
  store: string;
  id: string;
  /** The shared config; its `method` is overridden per run. */
  config: CampaignConfig;
  progress?: (method: Method) => ProgressSink;
  /** Replaces the real activities (tests). */
  activities?: CampaignActivities;
  /** Both methods on the shared config's settings, instead of each on its authors'. */
  sameSettings?: boolean;
}

/** EM-MMPS's training noise-level distribution in its authors' code: Beta(3,3) over the log-linear schedule. */
export const EMMPS_TIME_DISTRIBUTION = 'beta33';

/**
 * The two configs. Equal in everything but `method`, and, unless `sameSettings`, EM-MMPS
 * trains on its authors' Beta(3,3) rather than DiffEM's tuned distribution (its guidance
 * solve follows `estep`, exact for small m unless the config fixes the iterations).
 */
export function comparisonConfigs(config: CampaignConfig, sameSettings = false): Record<Method, CampaignConfig> {
  const emmps: CampaignConfig = sameSettings
    ? { ...config, method: 'emmps' }
    : { ...config, method: 'emmps', training: { ...config.training, timeDistribution: EMMPS_TIME_DISTRIBUTION } };
  return { diffem: { ...config, method: 'diffem' }, emmps };
}

export function comparisonCampaignId(id: string, method: Method): string {
  return `${id}-${method}`;
}

/** Runs (or resumes) both campaigns one after the other, then records the comparison. */
export async function runComparison(options: ComparisonOptions): Promise<ComparisonRecord> {
  validateCampaignId(options.id);
  const store = storeFor(options.store);
  const configs = comparisonConfigs(options.config, options.sameSettings ?? false);
  const runs: ComparisonRun[] = [];
  const digests = new Map<Method, string>();
  for (const method of METHODS) {
    const campaignId = validateCampaignId(comparisonCampaignId(options.id, method));
    const summary = await runLocalCampaign({
      store: options.store,
      campaignId,
      config: configs[method],
      progress: options.progress?.(method),
      activities: options.activities,
    });
    digests.set(method, await observationsDigest(store, campaignId));
    const history = await campaignHistory(store, campaignId);
    let total = 0;
    let passes = 0;
    let seconds = 0;
    const laps = history.map((h) => {
      total += h.evaluations;
      passes += h.evaluations + h.trainingEvaluations;
      seconds += h.seconds;
      return {
        lap: h.lap,
        metrics: h.metrics,
        evaluations: h.evaluations,
        cumulativeEvaluations: total,
        cumulativePasses: passes,
        seconds: h.seconds,
        ...(h.guidance ? { guidance: h.guidance } : {}),
      };
    });
    const final = await loadFinalStage(store, campaignId, { evaluations: total, passes, seconds });
    runs.push({
      method,
      campaignId,
      settings: methodSettings(configs[method], history),
      laps,
      final: final && {
        metrics: final.metrics,
        evaluations: final.evaluations,
        cumulativeEvaluations: final.cumulativeEvaluations,
        cumulativePasses: final.cumulativePasses,
      },
      priorMetrics: summary.priorMetrics,
      // Activity seconds, as recorded: a resumed comparison reports what the work took, not the replay.
      seconds: Math.round((history.reduce((sum, h) => sum + h.seconds, 0) + (final?.seconds ?? 0)) * 1000) / 1000,
    });
  }
  const [first, ...rest] = METHODS.map((m) => digests.get(m));
  if (!first || rest.some((d) => d !== first)) {
    throw new Error(
      `compare ${options.id}: the runs saw different data (observation digests ${METHODS.map((m) => `${m} ${digests.get(m)}`).join(', ')})`,
    );
  }
  const record: ComparisonRecord = {
    id: options.id,
    datasetDigest: first,
    seed: options.config.seed,
    laps: options.config.em.laps,
    trainingSteps: options.config.training.steps,
    estepSteps: options.config.estep.steps,
    sameSettings: options.sameSettings ?? false,
    runs,
  };
  await putJson(store, comparisonKey(options.id), record);
  return record;
}

export async function compareCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      store: { type: 'string' },
      id: { type: 'string' },
      out: { type: 'string' },
      'same-settings': { type: 'boolean' },
    },
  });
  if (positionals.length !== 1 || !values.store) throw new Error(`usage: ${COMPARE_USAGE}`);
  const path = positionals[0];
  const config = await loadConfigFile(path);
  const id =
    values.id ??
    (path.split('/').pop() ?? 'comparison').replace(/\.(ya?ml|json)$/i, '').replace(/[^A-Za-z0-9._-]/g, '-');
  process.stderr.write(
    `diffem: comparing ${METHODS.join(' and ')} on '${id}' (seed ${config.seed}, ${config.em.laps} laps) in ${storeFor(values.store).uri}\n`,
  );
  const record = await runComparison({
    store: values.store,
    id,
    config,
    sameSettings: values['same-settings'] ?? false,
    progress: () => new ConsoleProgress(),
  });
  const { html, ref } = await writeReport(storeFor(values.store), id);
  if (values.out) await writeOutFile(values.out, html);
  const lines = record.runs.map((run) => {
    const last = run.laps[run.laps.length - 1];
    const evaluations = run.final?.cumulativeEvaluations ?? last?.cumulativeEvaluations ?? 0;
    const final = run.final ? `\n         final E-step: ${formatMetrics(run.final.metrics)}` : '';
    return (
      `  ${run.method.padEnd(6)} lap ${last?.lap ?? '-'}: ${formatMetrics(last?.metrics)}${final}\n` +
      `         ${describeSettings(run.settings)}\n` +
      `         E-step evaluations ${evaluations.toLocaleString('en-US')}, ${run.seconds.toFixed(0)} s of activity time`
    );
  });
  process.stdout.write(
    `comparison ${id} (dataset ${record.datasetDigest.slice(0, 12)}):\n${lines.join('\n')}\n  report: ${values.out ?? ref.key}\n`,
  );
}
