/**
 * Bad input (a missing or corrupt artifact, a wrong shape, a NaN loss) must not be retried:
 * another attempt would fail the same way and hide the cause. Such errors carry a `type`
 * and `nonRetryable`; both engines honour them (Temporal through ApplicationFailure).
 */
import { ApplicationFailure } from '@temporalio/common';
import { redactSecrets } from '../store/secrets.js';
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

/**
 * The error itself, or, when its message, stack or any cause quotes a secret (store/secrets.ts),
 * a failure of the same type and retryability with the secret taken out and no cause. On
 * Temporal an activity's error, stack and cause chain included, is written into the workflow
 * history, which the redaction of records and CLI errors never sees.
 */
export function withoutSecrets(error: unknown): unknown {
  const texts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (!(e instanceof Error)) {
      texts.push(String(e));
      break;
    }
    texts.push(e.message, e.stack ?? '');
    e = e.cause;
  }
  if (texts.every((text) => redactSecrets(text) === text)) return error;
  return ApplicationFailure.create({
    type: errorType(error),
    message: redactSecrets(error instanceof Error ? error.message : String(error)),
    nonRetryable: isNonRetryable(error),
  });
}

/** Runs an activity body, turning bad-input errors into Temporal's non-retryable failures. */
export async function asActivity<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (raw) {
    const error = withoutSecrets(raw);
    if (error !== raw) throw error;
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
