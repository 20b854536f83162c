/**
 * Error types that no retry can fix (bad input: a missing or corrupt artifact, a wrong
 * shape, a NaN loss). Activities raise them as non-retryable failures (activities/errors.ts)
 * and the Temporal retry policy lists them too, for errors that escape that wrapper. Pure,
 * so the workflow sandbox can import it.
 */
export const NON_RETRYABLE_ERROR_TYPES: readonly string[] = [
  'ArtifactNotFound',
  'ArtifactCorrupt',
  'InvalidKey',
  'InvalidConfig',
  'NonFiniteLoss',
  'NonFiniteData',
  'SafetensorsInvalid',
  'MalformedModelError',
  'MalformedModel',
  'ShapeMismatch',
  'DeviceUnavailable',
];
