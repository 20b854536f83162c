/**
 * Budget sweep: DiffEM and EM-MMPS (each on its authors' settings, as `diffem compare`
 * runs them) at 1x, 4x and 16x training steps per lap, everything else fixed, to see whether
 * more M-step budget brings DiffEM's consistency towards 1 (exact posteriors) and whether
 * either method's lead holds. Writes, under --out:
 *   budget-sweep.json  per multiplier and method, the last lap's metrics and the run's cost
 *                      (network passes, activity seconds);
 *   budget-sweep.png   curve distance (mean, median), Sinkhorn divergence and consistency (log
 *                      axis) against training budget.
 * Every run is a resumable comparison in --store (`budget-x{k}`), so an interrupted sweep
 * picks up where it stopped.
 *
 *   node dist/bench/budget-sweep.js [--config examples/manifold.yaml] --store DIR --out DIR
 *        [--multipliers 1,4,16] [--count N] [--laps L] [--steps S]
 *
 * --count, --laps and --steps shrink the config (observations, laps, base training steps
 * per lap; lap 0 keeps its ratio to later laps) for a sweep that fits a small machine.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { runComparison } from '../cli/compare.js';
import { loadConfigFile } from '../engines/config-file.js';
import type { CampaignConfig } from '../workflows/config.js';

interface SweepPoint {
  multiplier: number;
  trainingSteps: number;
  method: string;
  lap: number;
  metrics: Record<string, number>;
  passes: number;
  seconds: number;
}

function scaled(
  config: CampaignConfig,
  multiplier: number,
  base: { steps?: number; count?: number; laps?: number },
): CampaignConfig {
  const steps = base.steps ?? config.training.steps;
  const ratio = (config.training.firstSteps ?? config.training.steps) / config.training.steps;
  const data = base.count && config.data.kind === 'manifold' ? { ...config.data, count: base.count } : config.data;
  return {
    ...config,
    data,
    em: {
      ...config.em,
      laps: base.laps ?? config.em.laps,
      shardSize: Math.min(config.em.shardSize, base.count ?? Infinity),
    },
    training: {
      ...config.training,
      steps: steps * multiplier,
      firstSteps: Math.round(steps * ratio) * multiplier,
    },
  } as CampaignConfig;
}

/** Metric, title, and whether its axis is logarithmic (consistency spans 1 to 1e2 and more). */
const PANELS: Array<[string, string, boolean]> = [
  ['curve_distance_mean', 'curve distance (mean)', false],
  ['curve_distance_median', 'curve distance (median)', false],
  ['sinkhorn', 'Sinkhorn divergence', false],
  ['consistency', 'consistency (1 = exact posterior)', true],
];
const COLORS: Record<string, string> = { diffem: '#1f77b4', emmps: '#d62728' };

/** One log-x panel per metric, one line per method. */
function sweepSvg(points: SweepPoint[]): string {
  const w = 360;
  const h = 280;
  const pad = { l: 60, r: 16, t: 34, b: 44 };
  const parts: string[] = [];
  PANELS.forEach(([key, title, logarithmic], p) => {
    const ox = p * w;
    const present = points.filter((q) => Number.isFinite(q.metrics[key]) && (!logarithmic || q.metrics[key] > 0));
    const xs = present.map((q) => Math.log2(q.multiplier));
    const scale = (v: number) => (logarithmic ? Math.log10(v) : v);
    // The consistency axis always shows 1, the exact posterior's score.
    const ys = [...present.map((q) => scale(q.metrics[key])), ...(logarithmic ? [0] : [])];
    const [x0, x1] = [Math.min(...xs, 0), Math.max(...xs, 1)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (!(y1 > y0)) [y0, y1] = [y0 - 1, y1 + 1];
    const X = (v: number) => ox + pad.l + ((v - x0) / (x1 - x0)) * (w - pad.l - pad.r);
    /** The height of a point of the (possibly log-) scaled axis, and of a metric value. */
    const Yscaled = (u: number) => pad.t + (1 - (u - y0) / (y1 - y0)) * (h - pad.t - pad.b);
    const Y = (v: number) => Yscaled(scale(v));
    const unscale = (u: number) => (logarithmic ? 10 ** u : u);
    parts.push(`<text x="${ox + w / 2}" y="20" text-anchor="middle" font-size="13">${title}</text>`);
    parts.push(`<line x1="${X(x0)}" y1="${Yscaled(y0)}" x2="${X(x1)}" y2="${Yscaled(y0)}" stroke="#444"/>`);
    parts.push(`<line x1="${X(x0)}" y1="${Yscaled(y0)}" x2="${X(x0)}" y2="${Yscaled(y1)}" stroke="#444"/>`);
    if (logarithmic) {
      parts.push(`<line x1="${X(x0)}" y1="${Y(1)}" x2="${X(x1)}" y2="${Y(1)}" stroke="#999" stroke-dasharray="4 3"/>`);
    }
    for (const m of [...new Set(points.map((q) => q.multiplier))]) {
      parts.push(`<text x="${X(Math.log2(m))}" y="${h - pad.b + 16}" text-anchor="middle" font-size="11">${m}x</text>`);
    }
    for (const u of [y0, (y0 + y1) / 2, y1]) {
      parts.push(
        `<text x="${ox + pad.l - 6}" y="${Yscaled(u) + 4}" text-anchor="end" font-size="11">${unscale(u).toPrecision(3)}</text>`,
      );
    }
    parts.push(
      `<text x="${ox + w / 2}" y="${h - 8}" text-anchor="middle" font-size="11">training steps per lap (x base)</text>`,
    );
    for (const method of Object.keys(COLORS)) {
      const line = present.filter((q) => q.method === method).sort((a, b) => a.multiplier - b.multiplier);
      if (!line.length) continue;
      const path = line.map((q, i) => `${i ? 'L' : 'M'}${X(Math.log2(q.multiplier))},${Y(q.metrics[key])}`).join(' ');
      parts.push(`<path d="${path}" fill="none" stroke="${COLORS[method]}" stroke-width="2"/>`);
      for (const q of line)
        parts.push(
          `<circle cx="${X(Math.log2(q.multiplier))}" cy="${Y(q.metrics[key])}" r="3.5" fill="${COLORS[method]}"/>`,
        );
    }
  });
  const legend = Object.entries(COLORS)
    .map(
      ([m, c], i) =>
        `<rect x="${16 + i * 90}" y="${h + 4}" width="12" height="12" fill="${c}"/><text x="${32 + i * 90}" y="${h + 14}" font-size="12">${m}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${PANELS.length * w}" height="${h + 24}" font-family="DejaVu Sans, sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}${legend}</svg>`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', default: 'examples/manifold.yaml' },
      store: { type: 'string' },
      out: { type: 'string' },
      multipliers: { type: 'string', default: '1,4,16' },
      count: { type: 'string' },
      laps: { type: 'string' },
      steps: { type: 'string' },
    },
  });
  if (!values.store || !values.out)
    throw new Error(
      'usage: budget-sweep --store DIR --out DIR [--config FILE] [--multipliers 1,4,16] [--count N] [--laps L] [--steps S]',
    );
  const positive = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(Number.isInteger(n) && n > 0)) throw new Error(`--${name} must be a positive integer, got '${v}'`);
    return n;
  };
  const multipliers = values.multipliers.split(',').map((m) => positive('multipliers', m) as number);
  const base = {
    count: positive('count', values.count),
    laps: positive('laps', values.laps),
    steps: positive('steps', values.steps),
  };
  const config = await loadConfigFile(values.config);
  const points: SweepPoint[] = [];
  await mkdir(values.out, { recursive: true });
  for (const multiplier of multipliers) {
    const run = scaled(config, multiplier, base);
    process.stderr.write(`budget ${multiplier}x: ${run.training.steps} training steps per lap\n`);
    const record = await runComparison({ store: values.store, id: `budget-x${multiplier}`, config: run });
    for (const r of record.runs) {
      const last = r.laps[r.laps.length - 1];
      points.push({
        multiplier,
        trainingSteps: run.training.steps,
        method: r.method,
        lap: last.lap,
        metrics: last.metrics,
        passes: last.cumulativePasses,
        seconds: r.seconds,
      });
    }
    // Written after every budget, so a long sweep shows its progress.
    await writeFile(
      join(values.out, 'budget-sweep.json'),
      JSON.stringify({ config: values.config, base, points }, null, 2),
    );
    await writeFile(
      join(values.out, 'budget-sweep.png'),
      await sharp(Buffer.from(sweepSvg(points)))
        .png()
        .toBuffer(),
    );
  }
  for (const p of points) {
    process.stdout.write(
      `${String(p.multiplier).padStart(3)}x ${p.method.padEnd(6)} lap ${p.lap}: ` +
        PANELS.map(([k]) => `${k} ${p.metrics[k]?.toPrecision(4) ?? '-'}`).join(', ') +
        `, ${p.passes.toExponential(2)} passes, ${p.seconds.toFixed(0)} s\n`,
    );
  }
}

await main();
