/**
 * Training throughput on the wasm backend with and without the project's kernels.
 *
 * Prints one JSON line: plain-gradient-step rates (steps/s) of an MLP 81→256→256→256→5 at
 * batch 1024 and of a small conv net, first with the backend's own kernels ("before"; the
 * conv net cannot train there, Conv2DBackpropFilter being absent, so it reports null) and
 * then with ours ("after").
 */
import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../models/backend.js';
import { registerWasmKernels, unregisterWasmKernels } from '../models/kernels/index.js';

type Loss = (...params: tf.Tensor[]) => tf.Scalar;

interface Model {
  params: tf.Tensor[];
  loss: Loss;
}

function randn(shape: number[], scale: number): tf.Tensor {
  return tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 7), scale);
}

function mlp(): Model {
  const widths = [81, 256, 256, 256, 5];
  const params: tf.Tensor[] = [];
  for (let i = 0; i + 1 < widths.length; i++) {
    params.push(randn([widths[i], widths[i + 1]], Math.sqrt(2 / widths[i])), tf.zeros([widths[i + 1]]));
  }
  const x = randn([1024, 81], 1);
  const y = randn([1024, 5], 1);
  const loss: Loss = (...p) => {
    let h: tf.Tensor = x;
    for (let i = 0; i < p.length; i += 2) {
      h = tf.add(tf.matMul(h, p[i]), p[i + 1]);
      if (i + 2 < p.length) h = tf.relu(h);
    }
    return tf.mean(tf.square(tf.sub(h, y)));
  };
  return { params, loss };
}

/** conv3×3(3→16) → relu → conv3×3/2(16→32) → relu → dense(8·8·32→5), batch 32 of 16×16×3. */
function convNet(): Model {
  const params = [
    randn([3, 3, 3, 16], Math.sqrt(2 / 27)),
    randn([3, 3, 16, 32], Math.sqrt(2 / 144)),
    randn([8 * 8 * 32, 5], Math.sqrt(1 / 2048)),
  ];
  const x = randn([32, 16, 16, 3], 1);
  const y = randn([32, 5], 1);
  const loss: Loss = (w1, w2, w3) => {
    const h1 = tf.relu(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, 'same'));
    const h2 = tf.relu(tf.conv2d(h1, w2 as tf.Tensor4D, 2, 'same'));
    const out = tf.matMul(tf.reshape(h2, [32, 8 * 8 * 32]), w3);
    return tf.mean(tf.square(tf.sub(out, y)));
  };
  return { params, loss };
}

/** Plain gradient steps for about `seconds`; returns steps per second. */
function rate(model: Model, seconds: number): number {
  let params = model.params.map((p) => tf.clone(p));
  const step = (): void => {
    const next = tf.tidy(() => {
      const grads = tf.grads(model.loss)(params);
      return params.map((p, i) => tf.sub(p, tf.mul(grads[i], 1e-3)));
    });
    tf.dispose(params);
    params = next;
  };
  step();
  let steps = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000 || steps < 3) {
    step();
    steps++;
  }
  params[0].dataSync();
  const elapsed = (performance.now() - start) / 1000;
  tf.dispose(params);
  return steps / elapsed;
}

function rateOrNull(model: Model, seconds: number): number | null {
  try {
    return rate(model, seconds);
  } catch {
    return null;
  }
}

function round(v: number | null): number | null {
  return v === null ? null : Math.round(v * 10) / 10;
}

async function main(): Promise<void> {
  const info = await initBackend({ backend: 'wasm' });
  const models = { mlp: mlp(), conv: convNet() };

  unregisterWasmKernels();
  const mlpBefore = rate(models.mlp, 4);
  const convBefore = rateOrNull(models.conv, 2);
  registerWasmKernels();
  const mlpAfter = rate(models.mlp, 4);
  const convAfter = rate(models.conv, 4);

  console.log(
    JSON.stringify({
      backend: info.backend,
      simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
      mlp: { before: round(mlpBefore), after: round(mlpAfter), speedup: round(mlpAfter / mlpBefore) },
      conv: { before: round(convBefore), after: round(convAfter) },
    }),
  );
}

await main();
