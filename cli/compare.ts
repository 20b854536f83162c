/**
 * `diffem compare CONFIG --store URI [--id ID] [--out FILE]`: DiffEM against its baseline
 * EM-MMPS on the same corrupted data. Two campaigns, `ID-diffem` and `ID-emmps`, whose
 * configs differ only in `method`: the same seed gives the same data (checked: the
 * digests of their observations' values must be equal), and both run the same laps, training steps and E-step
 * sampler steps. What differs is the E-step's cost, recorded per lap as network
 * evaluations, which the report puts on the x axis (the equal-compute view).
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
} from './report-data.js';
import { writeReport } from './report.js';
import { writeOutFile } from './out-file.js';

export const COMPARE_USAGE = 'diffem compare CONFIG.yaml --store URI [--id ID] [--out FILE]';

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
}

/** The two configs: equal in everything but `method`. */
export function comparisonConfigs(config: CampaignConfig): Record<Method, CampaignConfig> {
  return { diffem: { ...config, method: 'diffem' }, emmps: { ...config, method: 'emmps' } };
}

export function comparisonCampaignId(id: string, method: Method): string {
  return `${id}-${method}`;
}

/** Runs (or resumes) both campaigns one after the other, then records the comparison. */
export async function runComparison(options: ComparisonOptions): Promise<ComparisonRecord> {
  validateCampaignId(options.id);
  const store = storeFor(options.store);
  const configs = comparisonConfigs(options.config);
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
    const laps = history.map((h) => {
      total += h.evaluations;
      return {
        lap: h.lap,
        metrics: h.metrics,
        evaluations: h.evaluations,
        cumulativeEvaluations: total,
        seconds: h.seconds,
      };
    });
    const final = await loadFinalStage(store, campaignId, total);
    runs.push({
      method,
      campaignId,
      laps,
      final: final && {
        metrics: final.metrics,
        evaluations: final.evaluations,
        cumulativeEvaluations: final.cumulativeEvaluations,
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
    mmpsCgIterations: options.config.estep.mmpsCgIterations,
    runs,
  };
  await putJson(store, comparisonKey(options.id), record);
  return record;
}

export async function compareCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { store: { type: 'string' }, id: { type: 'string' }, out: { type: 'string' } },
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
  const record = await runComparison({ store: values.store, id, config, progress: () => new ConsoleProgress() });
  const { html, ref } = await writeReport(storeFor(values.store), id);
  if (values.out) await writeOutFile(values.out, html);
  const lines = record.runs.map((run) => {
    const last = run.laps[run.laps.length - 1];
    const evaluations = run.final?.cumulativeEvaluations ?? last?.cumulativeEvaluations ?? 0;
    const final = run.final ? `\n         final E-step: ${formatMetrics(run.final.metrics)}` : '';
    return (
      `  ${run.method.padEnd(6)} lap ${last?.lap ?? '-'}: ${formatMetrics(last?.metrics)}${final}\n` +
      `         E-step evaluations ${evaluations.toLocaleString('en-US')}, ${run.seconds.toFixed(0)} s of activity time`
    );
  });
  process.stdout.write(
    `comparison ${id} (dataset ${record.datasetDigest.slice(0, 12)}):\n${lines.join('\n')}\n  report: ${values.out ?? ref.key}\n`,
  );
}
