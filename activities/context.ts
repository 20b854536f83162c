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
      heartbeat: (details) => temporal.heartbeat(details),
      signal: temporal.cancellationSignal,
    };
  } catch {
    return detached;
  }
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
