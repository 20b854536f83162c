/**
 * The project's one entry to tfjs-core, with the chained tensor methods (`x.add(y).relu()`).
 *
 * tfjs-core's Node bundle does not install them, and its ES-module copy that does cannot be
 * loaded by Node (extension-less imports). So the types come from that module (type-only
 * import: nothing of it runs) and the methods are installed here: each chained method
 * `t.op(...args)` is exactly `tf.op(t, ...args)`.
 */
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
import * as tfcore from '@tensorflow/tfjs-core';

type OpFunction = (this: void, ...args: unknown[]) => unknown;

function installChainedOps(): void {
  const prototype = tfcore.Tensor.prototype as unknown as Record<string, unknown>;
  const ops = tfcore as unknown as Record<string, unknown>;
  for (const [name, op] of Object.entries(ops)) {
    if (typeof op !== 'function' || name in prototype || /^[A-Z]/.test(name)) continue;
    const fn = op as OpFunction;
    Object.defineProperty(prototype, name, {
      configurable: true,
      writable: true,
      value: function (this: tfcore.Tensor, ...args: unknown[]) {
        this.throwIfDisposed();
        return fn(this, ...args);
      },
    });
  }
}

installChainedOps();

export * from '@tensorflow/tfjs-core';
