/**
 * What every activity does around its own work, written once: the wall-clock seconds and the
 * attempt that produced the result (both go into the lap record), and bad input turned into
 * a non-retryable failure (`asActivity`), and, on Temporal, heartbeats while it runs
 * (`keepAlive`), so a lost worker is noticed within the heartbeat timeout.
 */
import type { Timed } from '../workflows/types.js';
import { activityContext, keepAlive } from './context.js';
import { asActivity } from './errors.js';

/** An activity's result before the wrapper times it. */
export type Untimed<T extends Timed> = Omit<T, keyof Timed>;

export function timedActivity<I, O extends Timed>(body: (input: I) => Promise<Untimed<O>>): (input: I) => Promise<O> {
  return (input) =>
    asActivity(async () => {
      const started = performance.now();
      const stopHeartbeats = keepAlive();
      let output: Untimed<O>;
      try {
        output = await body(input);
      } finally {
        stopHeartbeats();
      }
      // The spread's type is Untimed<O> & Timed, which is O for every activity output.
      const timed: Untimed<O> & Timed = {
        ...output,
        seconds: (performance.now() - started) / 1000,
        attempt: activityContext().attempt,
      };
      return timed as O;
    });
}
