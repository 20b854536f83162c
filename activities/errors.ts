/**
 * Bad input (a missing or corrupt artifact, a wrong shape, a NaN loss) must not be retried:
 * another attempt would fail the same way and hide the cause. Such errors carry a `type`
 * and `nonRetryable`; both engines honour them (Temporal through ApplicationFailure).
 */
import { ApplicationFailure } from '@temporalio/common';
import { NON_RETRYABLE_ERROR_TYPES } from '../workflows/errors.js';

export class BadInputError extends Error {
  readonly nonRetryable = true;
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const NON_RETRYABLE_TYPES = new Set(NON_RETRYABLE_ERROR_TYPES);

export function errorType(error: unknown): string {
  if (error && typeof error === 'object' && 'type' in error && typeof error.type === 'string') return error.type;
  return error instanceof Error ? error.name : 'Error';
}

export function isNonRetryable(error: unknown): boolean {
  if (error instanceof ApplicationFailure) return error.nonRetryable === true;
  if (error && typeof error === 'object' && 'nonRetryable' in error && error.nonRetryable === true) return true;
  return NON_RETRYABLE_TYPES.has(errorType(error));
}

/** Runs an activity body, turning bad-input errors into Temporal's non-retryable failures. */
export async function asActivity<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (isNonRetryable(error) && !(error instanceof ApplicationFailure)) {
      throw ApplicationFailure.create({
        type: errorType(error),
        message: error instanceof Error ? error.message : String(error),
        nonRetryable: true,
        cause: error instanceof Error ? error : undefined,
      });
    }
    throw error;
  }
}
