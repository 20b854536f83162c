/**
 * The 'fast' kernels against the portable path they replace: the fused bias + LayerNorm +
 * SiLU layer and the fused GroupNorm + SiLU (forward and every gradient) against the
 * composite tfjs ops on the same backend, and the OpenBLAS BatchMatMul against tfjs's pure-JS cpu backend, for every
 * transpose combination and a batched product.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as tf from '../models/tf.js';
import { blasGemmInstalled, initBackend } from '../models/backend.js';
import { MlpNetwork, initMlpParams, type MlpConfig } from '../models/denoisers/mlp.js';
import { UnetNetwork, initUnetParams, type UnetConfig } from '../models/denoisers/unet.js';
import { loadOpenBlas } from '../models/kernels/blas.js';
import { fusedLayersEnabled } from '../models/kernels/layer-norm-silu.js';
import { Rng } from '../models/rng.js';
import { Adam, type OptimizerState } from '../models/training/adam.js';
import { maxRelativeError } from './helpers/relative-error.js';

test('the fused layer gives the composite ops’ output and gradients', async () => {
  const config: MlpConfig = { dim: 5, condDim: 12, hidden: [48, 33], embedDim: 16 };
  const params = initMlpParams(config, Rng.derive(3, 'fused'));
  // Non-trivial LayerNorm affine parameters, so their gradients are exercised.
  const rng = Rng.derive(3, 'affine');
  for (const [name, p] of Object.entries(params)) {
    if (name.includes('.norm.')) for (let i = 0; i < p.data.length; i++) p.data[i] += 0.3 * rng.normal();
  }
  const n = 24;
  const data = Rng.derive(3, 'data');
  const x = data.fillNormal(new Float32Array(n * 5));
  const cond = data.fillNormal(new Float32Array(n * 12));
  const sigma = new Float32Array(n).map(() => Math.exp(data.uniform() * 6 - 4));

  const run = async (kernels: 'portable' | 'fast') => {
    await initBackend({ backend: 'wasm', kernels });
    assert.equal(fusedLayersEnabled(), kernels === 'fast');
    const network = MlpNetwork.fromParams(config, params, true);
    const variables = Object.values(network.weights) as tf.Variable[];
    const xt = tf.tensor2d(x, [n, 5]);
    const s = tf.tensor1d(sigma);
    const c = tf.tensor2d(cond, [n, 12]);
    const { value, grads } = tf.variableGrads(
      () => network.denoise(xt, s, c).sub(xt).square().mean() as tf.Scalar,
      variables,
    );
    const out = new Map<string, Float32Array>([['loss', value.dataSync() as Float32Array]]);
    out.set(
      'denoised',
      tf.tidy(() => network.denoise(xt, s, c).dataSync() as Float32Array),
    );
    for (const v of variables) out.set(v.name.split('#')[0], grads[v.name].dataSync() as Float32Array);
    tf.dispose([value, xt, s, c, ...Object.values(grads)]);
    network.dispose();
    return out;
  };
  const portable = await run('portable');
  const fast = await run('fast');
  await initBackend({ backend: 'wasm', kernels: 'portable' });
  assert.equal(fast.size, portable.size);
  for (const [name, expected] of portable) {
    const error = maxRelativeError(expected, fast.get(name)!);
    assert.ok(error < 2e-5, `${name}: relative error ${error}`);
  }
});

test('OpenBLAS BatchMatMul agrees with the cpu backend', async (t) => {
  const blas = await loadOpenBlas();
  if (!blas.ok) {
    t.skip(blas.reason);
    return;
  }
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[37, 19], [19, 23], false, false],
    [[19, 37], [19, 23], true, false],
    [[37, 19], [23, 19], false, true],
    [[19, 37], [23, 19], true, true],
    [[3, 7, 5], [3, 5, 4], false, false],
    [[3, 5, 7], [1, 4, 5], true, true],
  ];
  const rng = Rng.derive(5, 'gemm');
  for (const [shapeA, shapeB, ta, tb] of cases) {
    const a = rng.fillNormal(new Float32Array(shapeA.reduce((p, q) => p * q, 1)));
    const b = rng.fillNormal(new Float32Array(shapeB.reduce((p, q) => p * q, 1)));
    const product = () =>
      tf.tidy(() => tf.matMul(tf.tensor(a, shapeA), tf.tensor(b, shapeB), ta, tb).dataSync() as Float32Array);
    await tf.setBackend('cpu');
    const expected = product();
    await initBackend({ backend: 'wasm', gemm: 'openblas' });
    assert.ok(blasGemmInstalled());
    const actual = product();
    await initBackend({ backend: 'wasm', gemm: 'wasm' });
    const error = maxRelativeError(expected, actual);
    assert.ok(error < 1e-5, `[${shapeA}]${ta ? 'ᵀ' : ''} · [${shapeB}]${tb ? 'ᵀ' : ''}: relative error ${error}`);
  }
});

test('OpenBLAS convolutions (forward, filter and input gradients) agree with the cpu backend', async (t) => {
  const blas = await loadOpenBlas();
  if (!blas.ok) {
    t.skip(blas.reason);
    return;
  }
  // [batch, height, width, in, out], kernel, stride, padding: 3x3 'same' as the U-Net, a
  // strided downsampling, a 1x1 skip, a valid 5x5, and even kernels whose 'same' padding is
  // uneven (strided: columns; stride 1: the padded grid).
  const cases: Array<[number[], number, 1 | 2, 'same' | 'valid']> = [
    [[3, 9, 7, 4, 5], 3, 1, 'same'],
    [[2, 10, 9, 3, 6], 3, 2, 'same'],
    [[2, 6, 5, 7, 3], 1, 1, 'valid'],
    [[1, 11, 8, 2, 4], 5, 1, 'valid'],
    [[2, 8, 8, 3, 2], 4, 2, 'same'],
    [[2, 7, 6, 3, 4], 4, 1, 'same'],
  ];
  const rng = Rng.derive(6, 'conv');
  for (const [[b, h, w, ci, co], k, stride, pad] of cases) {
    const x = rng.fillNormal(new Float32Array(b * h * w * ci));
    const filter = rng.fillNormal(new Float32Array(k * k * ci * co));
    const run = () =>
      tf.tidy(() => {
        const xt = tf.tensor4d(x, [b, h, w, ci]);
        const ft = tf.tensor4d(filter, [k, k, ci, co]);
        // A loss whose gradient δ is not uniform, so every term of both gradients counts.
        const weight = tf
          .sin(tf.range(0, tf.conv2d(xt, ft, stride, pad).size))
          .reshape(tf.conv2d(xt, ft, stride, pad).shape);
        const f = (xi: tf.Tensor, fi: tf.Tensor) =>
          tf
            .conv2d(xi as tf.Tensor4D, fi as tf.Tensor4D, stride, pad)
            .mul(weight)
            .sum();
        const [dx, df] = tf.grads(f)([xt, ft]);
        return [tf.conv2d(xt, ft, stride, pad), dx, df].map((r) => r.dataSync() as Float32Array);
      });
    await tf.setBackend('cpu');
    const expected = run();
    await initBackend({ backend: 'wasm', gemm: 'openblas' });
    assert.ok(blasGemmInstalled());
    const actual = run();
    await initBackend({ backend: 'wasm', gemm: 'wasm' });
    ['y', 'dL/dx', 'dL/dw'].forEach((name, i) => {
      const error = maxRelativeError(expected[i], actual[i]);
      assert.ok(error < 1e-5, `${k}x${k} stride ${stride} ${pad}, ${name}: relative error ${error}`);
    });
  }
});

test('the fused GroupNorm + SiLU gives the composite ops’ U-Net output and gradients', async () => {
  const config: UnetConfig = {
    height: 6,
    width: 5,
    channels: 1,
    condChannels: 2,
    levels: [8, 12],
    blocksPerLevel: 1,
    attentionLevels: [1],
    embedDim: 8,
    dropout: 0,
    groups: 4,
  };
  const params = initUnetParams(config, Rng.derive(4, 'unet'));
  // Non-trivial GroupNorm affine parameters, so their gradients are exercised.
  const rng = Rng.derive(4, 'affine');
  for (const [name, p] of Object.entries(params)) {
    if (name.includes('norm')) for (let i = 0; i < p.data.length; i++) p.data[i] += 0.3 * rng.normal();
  }
  const n = 3;
  const data = Rng.derive(4, 'data');
  const x = data.fillNormal(new Float32Array(n * 30));
  const cond = data.fillNormal(new Float32Array(n * 60));
  const sigma = new Float32Array(n).map(() => Math.exp(data.uniform() * 6 - 4));
  const run = async (kernels: 'portable' | 'fast') => {
    await initBackend({ backend: 'wasm', kernels, gemm: 'wasm' });
    const network = UnetNetwork.fromParams(config, params, true);
    const named = Object.entries(network.weights) as Array<[string, tf.Variable]>;
    const variables = named.map(([, v]) => v);
    const xt = tf.tensor4d(x, [n, 6, 5, 1]);
    const s = tf.tensor1d(sigma);
    const c = tf.tensor4d(cond, [n, 6, 5, 2]);
    const { value, grads } = tf.variableGrads(
      () => network.denoise(xt, s, c).sub(xt).square().mean() as tf.Scalar,
      variables,
    );
    const out = new Map<string, Float32Array>([['loss', value.dataSync() as Float32Array]]);
    for (const [name, v] of named) out.set(name, grads[v.name].dataSync() as Float32Array);
    tf.dispose([value, xt, s, c, ...Object.values(grads)]);
    network.dispose();
    return out;
  };
  const portable = await run('portable');
  const fast = await run('fast');
  await initBackend({ backend: 'wasm', kernels: 'portable' });
  assert.equal(fast.size, portable.size);
  for (const [name, expected] of portable) {
    // q·(k + b) shifts a query's logits by the same q·b, which softmax ignores: this
    // gradient is zero in exact arithmetic, so both sides hold only rounding noise.
    if (name.endsWith('.k.bias')) continue;
    const error = maxRelativeError(expected, fast.get(name)!);
    assert.ok(error < 5e-5, `${name}: relative error ${error}`);
  }
});

test('Adam in place on the heap follows the op path, and resumes from its state exactly', async () => {
  const shapes: Record<string, number[]> = { a: [3, 4], b: [5] };
  const options = { lr: 0.05, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, clip: 1, emaDecay: 0.99, emaWarmup: 3 };
  const rng = Rng.derive(8, 'adam');
  const start = Object.fromEntries(
    Object.entries(shapes).map(([name, shape]) => [name, rng.fillNormal(new Float32Array(shape[0] * (shape[1] ?? 1)))]),
  );
  // Gradients large enough that clipping binds on some steps.
  const gradients = Array.from({ length: 10 }, () =>
    Object.fromEntries(
      Object.entries(start).map(([name, w]) => [name, rng.fillNormal(new Float32Array(w.length)).map((g) => g * 0.8)]),
    ),
  );
  interface Run {
    state: OptimizerState;
    weights: Record<string, Float32Array>;
  }
  const train = async (kernels: 'portable' | 'fast', from: number, to: number, previous?: Run): Promise<Run> => {
    await initBackend({ backend: 'wasm', kernels });
    const weights = new Map(
      Object.entries(shapes).map(([name, shape]) => [
        name,
        tf.variable(tf.tensor((previous?.weights ?? start)[name], shape), true),
      ]),
    );
    const adam = new Adam(weights, options, previous?.state);
    for (let t = from; t < to; t++) adam.apply(gradients[t], 0.05 * (1 - t / 20));
    const run: Run = {
      state: adam.state(),
      weights: Object.fromEntries([...weights].map(([name, w]) => [name, w.dataSync() as Float32Array])),
    };
    adam.dispose();
    for (const w of weights.values()) w.dispose();
    return run;
  };
  const ops = await train('portable', 0, 10);
  const inPlace = await train('fast', 0, 10);
  for (const [name, expected] of Object.entries(ops.weights)) {
    const error = maxRelativeError(expected, inPlace.weights[name]);
    assert.ok(error < 1e-5, `weights ${name}: relative error ${error}`);
  }
  for (const key of ['m', 'v', 'ema'] as const) {
    for (const [name, expected] of Object.entries(ops.state[key]!)) {
      const error = maxRelativeError(expected.data, inPlace.state[key]![name].data);
      assert.ok(error < 1e-5, `${key} ${name}: relative error ${error}`);
    }
  }
  const half = await train('fast', 0, 5);
  const resumed = await train('fast', 5, 10, half);
  assert.deepEqual(resumed.weights, inPlace.weights, 'weights after resuming');
  for (const key of ['m', 'v', 'ema'] as const) {
    for (const [name, expected] of Object.entries(inPlace.state[key]!)) {
      assert.deepEqual(resumed.state[key]![name].data, expected.data, `${key} ${name} after resuming`);
    }
  }
  await initBackend({ backend: 'wasm', kernels: 'portable' });
});
