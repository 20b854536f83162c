/**
 * `diffem compare CONFIG --store URI [--id ID] [--out FILE] [--same-settings] [--equal-laps]`: DiffEM
 * against its baseline EM-MMPS on the same corrupted data. Two campaigns, `ID-diffem` and
 * `ID-emmps`: the same seed gives the same data (checked: the digests of their
 * observations' values must be equal), and both run the same laps, training steps and
 * E-step sampler steps. Each method trains on its own authors' time distribution (DiffEM
 * the config's, EM-MMPS Beta(3,3) as in Rozet et al.) and EM-MMPS solves its guidance as
 * the config says (an exact solve for small m by default), unless `--same-settings` hands
 * both the shared config unchanged; the record and the report say what each used. The
 * E-step's cost is recorded per lap as network evaluations, and training's beside it, which
 * the report puts on the x axis. Then, unless `--equal-laps`, the cheaper method runs again
 * with the extra laps that bring its total passes to the dearer one's (`ID-METHOD-equal`, see
 * `equal-compute.ts`), so one comparison shows both at equal laps and at equal compute.
 * Writes `campaigns/ID/comparison.json` and the report `campaigns/ID/report.html`.
 * Re-running resumes: finished steps of either campaign are not run again.
 */
import { parseArgs } from 'node:util';
import { storeFor } from '../store/open.js';
import { putJson } from '../store/store.js';
import { runLocalCampaign } from '../engines/local/engine.js';
import { canonicalJson, validateCampaignId } from '../engines/records.js';
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
  type ComparisonVerdicts,
  type EqualComputeRecord,
  describeSettings,
  methodSettings,
} from './report-data.js';
import { writeReport } from './report.js';
import { describeVerdicts, planEqualCompute, verdicts } from './equal-compute.js';
import { writeOutFile } from './out-file.js';

export const COMPARE_USAGE =
  'diffem compare CONFIG.yaml --store URI [--id ID] [--out FILE] [--same-settings] [--equal-laps]';

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
  /** Also run the cheaper method to the dearer one's total passes (`ID-METHOD-equal`). */
  equalCompute?: boolean;
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

/** The cheaper method's campaign extended to equal total compute. */
export function equalComputeCampaignId(id: string, method: Method): string {
  return `${id}-${method}-equal`;
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
    runs.push(await runAndSummarise(options, method, campaignId, configs[method]));
    digests.set(method, await observationsDigest(store, campaignId));
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
  if (options.equalCompute) {
    record.equalCompute = await extendCheaper(options, configs, runs, first);
    if (record.equalCompute) record.verdicts = comparisonVerdicts(record, options.config);
  }
  await putJson(store, comparisonKey(options.id), record);
  return record;
}

/** Runs (or resumes) one campaign and reads back its per-lap costs and metrics. */
async function runAndSummarise(
  options: ComparisonOptions,
  method: Method,
  campaignId: string,
  config: CampaignConfig,
): Promise<ComparisonRun> {
  const store = storeFor(options.store);
  const summary = await runLocalCampaign({
    store: options.store,
    campaignId,
    config,
    progress: options.progress?.(method),
    activities: options.activities,
  });
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
      cumulativeSeconds: Math.round(seconds * 1000) / 1000,
      ...(h.guidance ? { guidance: h.guidance } : {}),
    };
  });
  const final = await loadFinalStage(store, campaignId, { evaluations: total, passes, seconds });
  return {
    method,
    campaignId,
    settings: methodSettings(config, history),
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
  };
}

/**
 * The cheaper method's campaign again with the laps that bring its passes to the dearer
 * one's (`ID-METHOD-equal`). A finished campaign cannot grow laps in place (its config
 * digest would change), so this is a third campaign of the same seed and data; its first
 * laps must reproduce the original's, which is checked lap by lap on the metrics.
 */
async function extendCheaper(
  options: ComparisonOptions,
  configs: Record<Method, CampaignConfig>,
  runs: ComparisonRun[],
  datasetDigest: string,
): Promise<EqualComputeRecord | undefined> {
  const [a, b] = runs;
  const plan = planEqualCompute(a, b);
  if (!plan) return undefined;
  const original = runs.find((r) => r.method === plan.extended) as ComparisonRun;
  const campaignId = validateCampaignId(equalComputeCampaignId(options.id, plan.extended));
  const base = configs[plan.extended];
  const config: CampaignConfig = { ...base, em: { ...base.em, laps: plan.laps } };
  const run = await runAndSummarise(options, plan.extended, campaignId, config);
  const digest = await observationsDigest(storeFor(options.store), campaignId);
  if (digest !== datasetDigest) {
    throw new Error(`compare ${options.id}: ${campaignId} saw different data (observation digest ${digest})`);
  }
  for (const lap of original.laps) {
    const again = run.laps.find((l) => l.lap === lap.lap);
    if (!again || canonicalJson(again.metrics) !== canonicalJson(lap.metrics)) {
      throw new Error(
        `compare ${options.id}: ${campaignId} did not reproduce lap ${lap.lap} of ${original.campaignId} ` +
          `(metrics ${canonicalJson(again?.metrics ?? null)} against ${canonicalJson(lap.metrics)})`,
      );
    }
  }
  return { ...plan, campaignId, reproducedLaps: original.laps.length, run };
}

/** Who wins each statistic at equal laps (both last laps) and at equal compute (the extended run's last lap). */
export function comparisonVerdicts(record: ComparisonRecord, config: CampaignConfig): ComparisonVerdicts {
  const last = (run: ComparisonRun) => run.laps[run.laps.length - 1];
  const sides = record.runs.map((run) => ({ method: run.method, metrics: last(run)?.metrics ?? {} }));
  const equal = record.equalCompute;
  const atCompute = equal
    ? record.runs.map((run) =>
        run.method === equal.extended
          ? { method: run.method, metrics: last(equal.run)?.metrics ?? {} }
          : { method: run.method, metrics: last(run)?.metrics ?? {} },
      )
    : [];
  return { equalLaps: verdicts(sides, config), equalCompute: verdicts(atCompute, config) };
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
      'equal-laps': { type: 'boolean' },
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
    equalCompute: !(values['equal-laps'] ?? false),
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
  const equal = record.equalCompute;
  if (equal && record.verdicts) {
    const last = equal.run.laps[equal.run.laps.length - 1];
    lines.push(
      `  ${equal.extended} at equal compute: ${equal.laps} laps (${equal.campaignId}), ${(last?.cumulativePasses ?? 0).toLocaleString('en-US')} passes against ${equal.against}'s ${equal.budgetPasses.toLocaleString('en-US')}\n` +
        `         lap ${last?.lap ?? '-'}: ${formatMetrics(last?.metrics)}\n` +
        `  at equal laps: ${describeVerdicts(record.verdicts.equalLaps)}\n` +
        `  at equal compute: ${describeVerdicts(record.verdicts.equalCompute)}`,
    );
  }
  process.stdout.write(
    `comparison ${id} (dataset ${record.datasetDigest.slice(0, 12)}):\n${lines.join('\n')}\n  report: ${values.out ?? ref.key}\n`,
  );
}
