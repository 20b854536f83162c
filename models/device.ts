/**
 * Asking for a device this machine cannot provide (device 'cuda' without the CUDA builds of
 * TensorFlow or ONNX Runtime) is a configuration error, not a transient fault: its type lets
 * the engines fail at once instead of retrying, and its message says what to install.
 */
export class DeviceUnavailableError extends Error {
  readonly type = 'DeviceUnavailable';
  override readonly name = 'DeviceUnavailableError';
}
