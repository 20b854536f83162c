/**
 * How a fused forward/backward kernel pair becomes one op on the autodiff tape: the forward
 * kernel returns [y, ...saved]; the gradient runs the backward kernel on dy, the saved
 * outputs and the inputs it names again, which returns one gradient per input, in order.
 * The pair is registered for the wasm backend on first use.
 */
import { getKernel, registerKernel, type KernelConfig, type NamedAttrMap } from '@tensorflow/tfjs-core';

import * as tf from '../tf.js';
import { WASM } from './wasm.js';

/** Registers each config for the wasm backend unless one of that name is in (idempotent). */
export function registerOnce(configs: KernelConfig[]): void {
  for (const config of configs) {
    if (getKernel(config.kernelName, WASM) === undefined) registerKernel(config);
  }
}

export interface TapedKernels {
  forward: string;
  backward: string;
  /** Names of the forward kernel's outputs after y, as the backward kernel reads them. */
  saved: string[];
  /** Inputs the backward kernel reads again. */
  reused: string[];
}

export function tapedKernelOp(
  kernels: TapedKernels,
  inputs: Array<[string, tf.Tensor]>,
  attrs: NamedAttrMap,
): tf.Tensor {
  const names = inputs.map(([name]) => name);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const named = Object.fromEntries(names.map((name, i) => [name, args[i] as tf.Tensor]));
    const save = args[names.length] as tf.GradSaveFunc;
    const [y, ...extra] = tf.engine().runKernel(kernels.forward, named, attrs) as tf.Tensor[];
    save([...extra, ...kernels.reused.map((name) => named[name])]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const backwardInputs: Record<string, tf.Tensor> = { dy: dy as tf.Tensor };
        [...kernels.saved, ...kernels.reused].forEach((name, i) => (backwardInputs[name] = saved[i]));
        return tf.engine().runKernel(kernels.backward, backwardInputs, attrs) as tf.Tensor[];
      },
    };
  });
  return op(...inputs.map(([, tensor]) => tensor));
}
