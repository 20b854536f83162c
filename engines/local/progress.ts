/**
 * Progress for people: one line per finished step and per lap (with the campaign's ETA from
 * the laps so far), and a live bar for long steps, driven by the activities' heartbeats. On
 * a terminal the bar redraws in place; elsewhere (CI, logs) it prints every 10 %.
 *
 * The ETA averages the laps this process worked on. A resumed campaign replays its finished
 * laps from the store in well under a second each, and counting them would promise minutes
 * for laps that take hours; until a lap runs here the ETA is '?'.
 */
import type { CampaignProgress } from '../../workflows/campaign.js';
import type { Metrics } from '../../workflows/types.js';

export interface ProgressSink {
  campaign(event: CampaignProgress): void;
  stepStarted(step: string, activity: string, attempt: number): void;
  stepFinished(step: string, seconds: number, reused: boolean): void;
  stepFailed(step: string, error: string, willRetry: boolean): void;
  heartbeat(step: string, details: unknown): void;
  /** A line about the campaign itself (paused, resumed, stopping). */
  notice(message: string): void;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 59.5) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const whole = Math.round(seconds);
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatMetrics(metrics: Metrics | undefined): string {
  if (!metrics) return '';
  return Object.entries(metrics)
    .map(([k, v]) => `${k}=${Number.isFinite(v) ? Number(v.toPrecision(4)) : v}`)
    .join(' ');
}

interface Bar {
  step: string;
  done: number;
  total: number;
  startedAt: number;
  startDone: number;
  lastPrintedDecile: number;
  extra: string;
}

/** Where the progress lines go: a terminal or log stream, or anything with `write`. */
export type ProgressOutput = Pick<NodeJS.WritableStream, 'write'>;

export class ConsoleProgress implements ProgressSink {
  private readonly started: number;
  private lapStartedAt: number;
  /** Seconds of the laps whose steps all ran in this process. */
  private readonly fullLapSeconds: number[] = [];
  /** Seconds of the laps that ran some steps here and reused others (a resumed lap). */
  private readonly partLapSeconds: number[] = [];
  private lapStepsRun = 0;
  private lapStepsReused = 0;
  private bar: Bar | null = null;
  private laps = 0;
  private lap = 0;

  constructor(
    private readonly out: ProgressOutput = process.stderr,
    private readonly interactive = Boolean(process.stderr.isTTY),
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
    this.lapStartedAt = now();
  }

  /** Mean seconds of a lap run here: full laps when there are any, else resumed ones. */
  private meanLapSeconds(): number {
    const laps = this.fullLapSeconds.length ? this.fullLapSeconds : this.partLapSeconds;
    return laps.length ? laps.reduce((a, b) => a + b, 0) / laps.length : Number.NaN;
  }

  private line(text: string): void {
    if (this.interactive && this.bar) this.out.write('\r\x1b[2K');
    this.out.write(`${text}\n`);
  }

  private prefix(): string {
    return this.laps ? `[lap ${this.lap}/${this.laps}]` : '[campaign]';
  }

  campaign(event: CampaignProgress): void {
    this.laps = event.laps;
    this.lap = event.lap;
    if (event.step === 'recorded') {
      const seconds = (this.now() - this.lapStartedAt) / 1000;
      if (this.lapStepsRun > 0) (this.lapStepsReused > 0 ? this.partLapSeconds : this.fullLapSeconds).push(seconds);
      this.lapStartedAt = this.now();
      [this.lapStepsRun, this.lapStepsReused] = [0, 0];
      const mean = this.meanLapSeconds();
      const remaining = Math.max(0, event.laps - event.lap);
      this.line(
        `${this.prefix()} finished in ${formatDuration(seconds)}: ${formatMetrics(event.metrics)} | ETA ${formatDuration(mean * (remaining + 1))} for ${remaining} laps + final`,
      );
    } else if (event.phase === 'done') {
      this.line(`[done] ${formatDuration((this.now() - this.started) / 1000)} in all: ${formatMetrics(event.metrics)}`);
    } else {
      this.line(`${event.phase === 'final' ? '[final]' : this.prefix()} ${event.step}`);
    }
  }

  stepStarted(step: string, activity: string, attempt: number): void {
    if (attempt > 1) this.line(`  ${step} (${activity}): attempt ${attempt}`);
  }

  stepFinished(step: string, seconds: number, reused: boolean): void {
    this.bar = null;
    if (reused) this.lapStepsReused++;
    else this.lapStepsRun++;
    this.line(`  ${step} ${reused ? 'already done (reused)' : `done in ${formatDuration(seconds)}`}`);
  }

  notice(message: string): void {
    this.bar = null;
    this.line(`${this.prefix()} ${message}`);
  }

  stepFailed(step: string, error: string, willRetry: boolean): void {
    this.bar = null;
    this.line(`  ${step} failed${willRetry ? ', retrying' : ''}: ${error}`);
  }

  heartbeat(step: string, details: unknown): void {
    const d = details as { step?: number; steps?: number; of?: number; loss?: number } | undefined;
    const done = d?.step;
    const total = d?.steps ?? d?.of;
    if (typeof done !== 'number' || typeof total !== 'number' || total <= 0) return;
    if (!this.bar || this.bar.step !== step) {
      this.bar = {
        step,
        done,
        total,
        startedAt: this.now(),
        startDone: done,
        lastPrintedDecile: Math.floor((10 * done) / total),
        extra: '',
      };
    }
    const bar = this.bar;
    bar.done = done;
    bar.total = total;
    bar.extra = typeof d?.loss === 'number' ? ` loss ${d.loss.toFixed(4)}` : '';
    const elapsed = (this.now() - bar.startedAt) / 1000;
    const rate = elapsed > 0 ? (done - bar.startDone) / elapsed : 0;
    const eta = rate > 0 ? (total - done) / rate : Number.NaN;
    const width = 24;
    const filled = Math.round((width * done) / total);
    const text = `  ${step} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${bar.extra} ${rate.toFixed(1)}/s ETA ${formatDuration(eta)}`;
    if (this.interactive) {
      this.out.write(`\r\x1b[2K${text}`);
    } else {
      // Logs get a line per 10 %, and only for steps long enough to need one.
      const decile = Math.floor((10 * done) / total);
      if (decile > bar.lastPrintedDecile && done < total && elapsed > 3) {
        bar.lastPrintedDecile = decile;
        this.out.write(`${text}\n`);
      }
    }
  }
}

export const silentProgress: ProgressSink = {
  campaign: () => undefined,
  stepStarted: () => undefined,
  stepFinished: () => undefined,
  stepFailed: () => undefined,
  heartbeat: () => undefined,
  notice: () => undefined,
};
