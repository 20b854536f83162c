/**
 * Reading a campaign back for people and tools: the per-lap history (from the lap records
 * and the step journal) and the campaign's status.
 */
import type { ArtifactStore } from '../store/store.js';
import {
  listSteps,
  readLapRecords,
  readSummary,
  requireCampaign,
  type RunningStep,
  type StepRecord,
} from '../engines/records.js';
import type { lineageOf } from '../engines/lineage.js';
import { formatDuration } from '../engines/local/progress.js';
import type { ArtifactRef, GuidanceStats, Metrics } from '../workflows/types.js';

export interface LapHistory {
  lap: number;
  metrics: Metrics;
  artifacts: ArtifactRef[];
  seconds: number;
  started: string | null;
  finished: string | null;
  attempts: number;
  failures: number;
  evaluations: number;
  /** Training's network passes (0 in records written before they were counted). */
  trainingEvaluations: number;
  guidance?: GuidanceStats;
  seeds: Record<string, string>;
}

function lapOf(step: string): number | null {
  const m = /^lap-(\d+)\//.exec(step);
  return m ? Number(m[1]) : null;
}

export async function campaignHistory(store: ArtifactStore, campaignId: string): Promise<LapHistory[]> {
  await requireCampaign(store, campaignId);
  const records = await readLapRecords(store, campaignId);
  const steps = await listSteps(store, campaignId);
  const byLap = new Map<number, StepRecord[]>();
  for (const s of steps) {
    const lap = lapOf(s.step);
    if (lap === null) continue;
    byLap.set(lap, [...(byLap.get(lap) ?? []), s]);
  }
  return records
    .sort((a, b) => a.lap - b.lap)
    .map((r) => {
      const lapSteps = byLap.get(r.lap) ?? [];
      const starts = lapSteps.flatMap((s) => s.executions.map((e) => e.startedAt)).sort();
      const ends = lapSteps
        .flatMap((s) => s.executions.map((e) => e.endedAt ?? ''))
        .filter(Boolean)
        .sort();
      const executions = lapSteps.flatMap((s) => s.executions);
      // The journal knows about interrupted attempts, which the record (built from outputs) cannot.
      const attempts = Math.max(r.attempts, executions.length);
      const failures = Math.max(r.failures, executions.filter((e) => e.outcome !== 'done').length);
      return {
        lap: r.lap,
        metrics: r.metrics,
        artifacts: r.artifacts,
        seconds: r.seconds,
        started: starts[0] ?? null,
        finished: ends[ends.length - 1] ?? null,
        attempts,
        failures,
        evaluations: r.evaluations,
        trainingEvaluations: r.trainingEvaluations ?? 0,
        ...(r.guidance ? { guidance: r.guidance } : {}),
        seeds: r.seeds,
      };
    });
}

const COLUMNS: Array<[string, string]> = [
  ['sinkhorn', 'sinkhorn'],
  ['curve_distance_mean', 'dist mean'],
  ['curve_distance_median', 'dist med'],
  ['curve_distance_p90', 'dist p90'],
  ['coverage', 'coverage'],
  ['consistency', 'consist.'],
  ['psnr', 'psnr'],
  ['ssim', 'ssim'],
  ['fid', 'fid'],
  ['inception_score', 'IS'],
];

export function historyTable(history: LapHistory[]): string {
  const present = COLUMNS.filter(([key]) => history.some((h) => key in h.metrics));
  const header = ['lap', ...present.map(([, label]) => label), 'seconds', 'attempts', 'artifacts'];
  const rows = history.map((h) => [
    String(h.lap),
    ...present.map(([key]) => (key in h.metrics ? formatNumber(h.metrics[key]) : '-')),
    formatDuration(h.seconds),
    `${h.attempts}${h.failures ? ` (${h.failures} failed)` : ''}`,
    String(h.artifacts.length),
  ]);
  const widths = header.map((_, i) => Math.max(header[i].length, ...rows.map((r) => r[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1000 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toPrecision(4);
}

/** `step [#####.....] 120/400 (as of 12:03:04)` from a running step's last heartbeat. */
export function progressBar(running: RunningStep): string {
  const d = running.details as { step?: number; steps?: number; of?: number } | null;
  const done = d?.step;
  const total = d?.steps ?? d?.of;
  const when = `(as of ${running.updatedAt.slice(11, 19)} UTC)`;
  if (typeof done !== 'number' || typeof total !== 'number' || total <= 0) return `${running.step} ${when}`;
  const width = 24;
  const filled = Math.min(width, Math.round((width * done) / total));
  return `${running.step} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${when}`;
}

/** The chain of warm-started campaigns, oldest first: each with its parent, data snapshot and final metrics. */
export async function chainText(store: ArtifactStore, chain: Awaited<ReturnType<typeof lineageOf>>): Promise<string> {
  const lines = ['chain (oldest first):'];
  for (const link of chain) {
    const summary = await readSummary(store, link.campaignId);
    const metric =
      summary && typeof summary.lastMetrics.sinkhorn === 'number'
        ? `sinkhorn=${formatNumber(summary.lastMetrics.sinkhorn)}`
        : '';
    lines.push(
      `  ${link.campaignId}  parent ${link.parent ?? '-'}  data ${link.snapshot ? `${link.snapshot.files} files ${link.snapshot.digest.slice(0, 12)}` : 'drawn from the seed'}  ${summary ? `${summary.laps} laps ${metric}` : 'not finished'}`,
    );
  }
  return lines.join('\n');
}
