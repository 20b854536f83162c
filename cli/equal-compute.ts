/**
 * Equal total compute in `diffem compare`. Equal laps favour the method whose lap is dearer
 * (EM-MMPS: a VJP per solver iteration on every sampler step), so the comparison also gives
 * the cheaper method the rest of the budget as extra laps and sets its last lap beside the
 * dearer method's last lap.
 *
 * The budget is the dearer method's network passes through its last lap: training (a forward
 * and a backward pass per row of every batch) and E-step sampling, as the lap records count
 * them. The final E-step and the final prior are the same work for either budget and stay out.
 * The cheaper method's extra laps are priced at its own last lap's passes (every lap after
 * the first trains the same steps and samples the same rows), and it gets the smallest lap
 * count whose passes reach the budget: equal compute from below would hand the win to the
 * dearer method by construction.
 *
 * Which method "wins" a statistic follows its meaning: higher PSNR, SSIM, coverage and
 * Inception Score, lower Sinkhorn divergence, curve distances and FID, and a consistency
 * nearer m/2, the value exact posterior samples score (docs/method.md, "Manifold metrics").
 */
import type { CampaignConfig } from '../workflows/config.js';
import type { Metrics } from '../workflows/types.js';

type Method = CampaignConfig['method'];

/** What the plan needs of a run: its method and, per lap in order, the passes so far. */
export interface RunCost {
  method: Method;
  laps: ReadonlyArray<{ lap: number; cumulativePasses: number }>;
}

export interface EqualComputePlan {
  /** The cheaper method, which gets extra laps. */
  extended: Method;
  /** The dearer method, whose passes are the budget. */
  against: Method;
  /** The dearer method's passes through its last lap. */
  budgetPasses: number;
  /** The cheaper method's passes through its last lap. */
  ownPasses: number;
  /** What each extra lap costs (the cheaper method's last lap). */
  perLapPasses: number;
  /** The laps the cheaper method had. */
  fromLaps: number;
  /** The smallest lap count whose passes reach the budget. */
  laps: number;
}

function lastLap(run: RunCost): { lap: number; cumulativePasses: number } {
  const last = run.laps[run.laps.length - 1];
  if (!last) throw new Error(`equal compute: the ${run.method} run has no recorded laps`);
  return last;
}

/**
 * The extra laps that bring the cheaper of two runs to the other's passes, or null when the
 * two already spent the same (nothing to extend).
 */
export function planEqualCompute(a: RunCost, b: RunCost): EqualComputePlan | null {
  const [lastA, lastB] = [lastLap(a), lastLap(b)];
  if (lastA.cumulativePasses === lastB.cumulativePasses) return null;
  const [cheap, dear] = lastA.cumulativePasses < lastB.cumulativePasses ? [a, b] : [b, a];
  const [own, budget] = [lastLap(cheap), lastLap(dear)];
  const before = cheap.laps.length >= 2 ? cheap.laps[cheap.laps.length - 2].cumulativePasses : 0;
  const perLap = own.cumulativePasses - before;
  if (cheap.laps.length < 2 || perLap <= 0) {
    throw new Error(
      `equal compute: the ${cheap.method} run has no EM lap to repeat (laps ${cheap.laps.map((l) => l.lap).join(', ')}); run at least one lap`,
    );
  }
  const extra = Math.ceil((budget.cumulativePasses - own.cumulativePasses) / perLap);
  return {
    extended: cheap.method,
    against: dear.method,
    budgetPasses: budget.cumulativePasses,
    ownPasses: own.cumulativePasses,
    perLapPasses: perLap,
    fromLaps: own.lap,
    laps: own.lap + extra,
  };
}

export type MetricSense = 'higher' | 'lower' | { target: number };

const HIGHER_IS_BETTER = new Set(['psnr', 'ssim', 'coverage', 'inception_score']);
const LOWER_IS_BETTER = new Set([
  'sinkhorn',
  'curve_distance_mean',
  'curve_distance_median',
  'curve_distance_p90',
  'fid',
]);

/**
 * Which way a metric improves, or null when it names no quality of the samples (the
 * training loss, whose scale depends on each method's time distribution).
 */
export function metricSense(metric: string, config: CampaignConfig): MetricSense | null {
  if (HIGHER_IS_BETTER.has(metric)) return 'higher';
  if (LOWER_IS_BETTER.has(metric)) return 'lower';
  if (metric === 'consistency' && 'obsDim' in config.channel) return { target: config.channel.obsDim / 2 };
  return null;
}

export interface Verdict {
  metric: string;
  values: Partial<Record<Method, number>>;
  /** null: a tie. */
  winner: Method | null;
  rule: string;
}

/** Per metric both sides report, who is better by that metric's sense. */
export function verdicts(
  sides: ReadonlyArray<{ method: Method; metrics: Metrics }>,
  config: CampaignConfig,
): Verdict[] {
  const [a, b] = sides;
  if (!a || !b) return [];
  const names = Object.keys(a.metrics).filter(
    (m) => Number.isFinite(a.metrics[m]) && Number.isFinite(b.metrics[m]) && metricSense(m, config) !== null,
  );
  return names.map((metric) => {
    const sense = metricSense(metric, config) as MetricSense;
    const [va, vb] = [a.metrics[metric], b.metrics[metric]];
    const score = (v: number) =>
      sense === 'higher' ? v : sense === 'lower' ? -v : -Math.abs(Math.log(Math.max(v, 1e-300) / sense.target));
    const [sa, sb] = [score(va), score(vb)];
    return {
      metric,
      values: { [a.method]: va, [b.method]: vb },
      winner: sa === sb ? null : sa > sb ? a.method : b.method,
      rule: sense === 'higher' ? 'higher is better' : sense === 'lower' ? 'lower is better' : `nearer ${sense.target}`,
    };
  });
}

/** "diffem wins psnr, ssim; emmps wins fid; tie on coverage", for the report and the console. */
export function describeVerdicts(list: readonly Verdict[]): string {
  const byWinner = new Map<string, string[]>();
  for (const v of list) {
    const key = v.winner ?? '';
    byWinner.set(key, [...(byWinner.get(key) ?? []), v.metric]);
  }
  const parts = [...byWinner]
    .filter(([winner]) => winner !== '')
    .map(([winner, metrics]) => `${winner} wins ${metrics.join(', ')}`);
  const ties = byWinner.get('');
  if (ties) parts.push(`tie on ${ties.join(', ')}`);
  return parts.length ? parts.join('; ') : 'no statistic both runs report';
}
