/**
 * The campaign's progress lines: the ETA after each lap comes from laps this process ran, so
 * a resumed campaign does not promise seconds for laps that take minutes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConsoleProgress } from '../engines/local/progress.js';

/** A progress sink on a clock the test moves, writing into a string. */
function harness(): { progress: ConsoleProgress; advance: (seconds: number) => void; lines: () => string[] } {
  let now = 1_000_000;
  let text = '';
  const out = {
    write(chunk: string | Uint8Array): boolean {
      text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return true;
    },
  };
  const progress = new ConsoleProgress(out, false, () => now);
  return {
    progress,
    advance: (seconds) => {
      now += seconds * 1000;
    },
    lines: () => text.split('\n').filter((l) => l.startsWith('[lap')),
  };
}

/** One lap of two steps, each reused or run for `seconds`. */
function lap(h: ReturnType<typeof harness>, index: number, steps: Array<{ reused: boolean; seconds: number }>): void {
  for (const [i, step] of steps.entries()) {
    h.advance(step.seconds);
    h.progress.stepFinished(`lap-${index}/step-${i}`, step.seconds, step.reused);
  }
  h.progress.campaign({ phase: 'lap', lap: index, laps: 4, step: 'recorded', metrics: { fid: 10 } });
}

test('a fresh campaign: the ETA is the mean lap times the laps left and the final stage', () => {
  const h = harness();
  lap(h, 0, [
    { reused: false, seconds: 60 },
    { reused: false, seconds: 60 },
  ]);
  lap(h, 1, [
    { reused: false, seconds: 120 },
    { reused: false, seconds: 120 },
  ]);
  const [first, second] = h.lines();
  assert.match(first, /finished in 2m00s: fid=10 \| ETA 10m00s for 4 laps \+ final$/);
  // Mean of 120 s and 240 s, times 3 laps and the final stage.
  assert.match(second, /finished in 4m00s: .* \| ETA 12m00s for 3 laps \+ final$/);
});

test('a resumed campaign: replayed laps do not count, a half-replayed lap counts until a whole one has run', () => {
  const h = harness();
  lap(h, 0, [
    { reused: true, seconds: 0.1 },
    { reused: true, seconds: 0.1 },
  ]);
  lap(h, 1, [
    { reused: true, seconds: 0.1 },
    { reused: false, seconds: 300 },
  ]);
  lap(h, 2, [
    { reused: false, seconds: 450 },
    { reused: false, seconds: 450 },
  ]);
  const [replayed, resumed, whole] = h.lines();
  assert.match(replayed, /\| ETA \? for 4 laps \+ final$/);
  // Only the half lap has run here: 300.1 s a lap, 3 laps and the final stage.
  assert.match(resumed, /\| ETA 20m00s for 3 laps \+ final$/);
  // A whole lap (900 s) replaces the half one: 2 laps and the final stage.
  assert.match(whole, /\| ETA 45m00s for 2 laps \+ final$/);
});
