/**
 * What an activity may know about its own execution, whichever engine runs it: the attempt
 * number, the details of the last heartbeat of an earlier attempt (to resume from), a way
 * to heartbeat, and cancellation. On Temporal this is `Context.current()`; the embedded
 * engine provides its own through `runInActivityContext`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Context } from '@temporalio/activity';

export interface ActivityContext {
  readonly attempt: number;
  readonly heartbeatDetails: unknown;
  heartbeat(details?: unknown): void;
  /** Aborted when the engine cancels the activity. */
  readonly signal: AbortSignal;
}

const local = new AsyncLocalStorage<ActivityContext>();

/** The details of each Temporal activity's last heartbeat, so a keep-alive can repeat them unchanged. */
const lastDetails = new WeakMap<Context, unknown>();

export function runInActivityContext<T>(context: ActivityContext, fn: () => Promise<T>): Promise<T> {
  return local.run(context, fn);
}

const detached: ActivityContext = {
  attempt: 1,
  heartbeatDetails: undefined,
  heartbeat: () => undefined,
  signal: new AbortController().signal,
};

export function activityContext(): ActivityContext {
  const own = local.getStore();
  if (own) return own;
  try {
    const temporal = Context.current();
    return {
      attempt: temporal.info.attempt,
      heartbeatDetails: temporal.info.heartbeatDetails,
      heartbeat: (details) => {
        lastDetails.set(temporal, details);
        temporal.heartbeat(details);
      },
      signal: temporal.cancellationSignal,
    };
  } catch {
    return detached;
  }
}

/**
 * Heartbeats a Temporal activity that has a heartbeat timeout, four times per timeout, for as
 * long as its process runs it, so the server notices a lost worker within the heartbeat
 * timeout instead of the start-to-close timeout (hours). It repeats the activity's own last
 * details (a training's checkpoint), since a heartbeat replaces them on the server and a retry
 * resumes from them. CPU-bound work must yield to the event loop between chunks
 * (`yieldToEventLoop`) for these heartbeats to flow. Without a heartbeat timeout (the embedded
 * engine, a test environment) nobody watches: it does nothing. Returns the function that stops it.
 */
export function keepAlive(): () => void {
  if (local.getStore()) return () => undefined;
  let temporal: Context;
  try {
    temporal = Context.current();
  } catch {
    return () => undefined;
  }
  const timeoutMs = temporal.info.heartbeatTimeoutMs;
  if (!timeoutMs) return () => undefined;
  const timer = setInterval(() => temporal.heartbeat(lastDetails.get(temporal)), Math.max(100, timeoutMs / 4));
  timer.unref();
  return () => clearInterval(timer);
}

/** Lets timers and I/O (heartbeats among them) run between chunks of CPU-bound work. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Throws the cancellation reason when the activity has been cancelled. */
export function throwIfCancelled(context: ActivityContext): void {
  if (context.signal.aborted) {
    throw context.signal.reason instanceof Error ? context.signal.reason : new Error('activity cancelled');
  }
}

/** A sampler's progress callback: heartbeats the step and stops the sampler once the activity is cancelled. */
export function stepReporter(context: ActivityContext): (done: number, total: number) => void {
  return (done, total) => {
    throwIfCancelled(context);
    context.heartbeat({ step: done, of: total });
  };
}
