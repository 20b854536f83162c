/**
 * Our wasm kernels against tfjs's pure-JS `cpu` backend, which serves as the reference:
 * the same inputs go through each backend and the outputs must agree to within 1e-4 of
 * the reference's magnitude.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import { initBackend, quietCpuBackend } from '../models/backend.js';
import { setColumnBudget, wasmKernelsRegistered } from '../models/kernels/index.js';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

/** Deterministic N(0, 1)-ish draws (sum of uniforms) so failures reproduce. */
function randn(size: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = next() + next() + next() + next() - 2;
  return out;
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

interface Arg {
  shape: number[];
  data: Float32Array;
}

function arg(shape: number[], seed: number): Arg {
  return { shape, data: randn(sizeOf(shape), seed) };
}

/** Runs `f` on `backend` with fresh tensors built from `args`; returns every output's data. */
async function on(
  backend: string,
  args: Arg[],
  f: (...t: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  if (backend === 'cpu') quietCpuBackend();
  return tf.tidy(() => {
    const out = f(...args.map((a) => tf.tensor(a.data, a.shape)));
    return (Array.isArray(out) ? out : [out]).map((t) => Float32Array.from(t.dataSync()));
  });
}

function assertClose(actual: Float32Array, expected: Float32Array, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let scale = 1;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  }
  assert.ok(Number.isFinite(worst), `${label}: non-finite output`);
  assert.ok(worst <= 1e-4 * scale, `${label}: max abs error ${worst} > 1e-4 × ${scale}`);
}

async function compare(label: string, args: Arg[], f: (...t: tf.Tensor[]) => tf.Tensor | tf.Tensor[]): Promise<void> {
  const got = await on('wasm', args, f);
  const want = await on('cpu', args, f);
  assert.equal(got.length, want.length);
  got.forEach((g, i) => assertClose(g, want[i], `${label} [output ${i}]`));
}

before(async () => {
  const info = await initBackend({ backend: 'wasm' });
  assert.deepEqual(info, { backend: 'wasm', device: 'cpu' });
  assert.ok(wasmKernelsRegistered());
});

describe('initBackend', () => {
  test('auto falls back to wasm when no native package is installed, and repeats cheaply', async () => {
    const first = await initBackend();
    assert.deepEqual(first, { backend: 'wasm', device: 'cpu' });
    const t0 = performance.now();
    const again = await initBackend({ backend: 'auto', device: 'auto' });
    assert.deepEqual(again, first);
    assert.ok(performance.now() - t0 < 50, 'a repeat call re-initialised something');
    assert.equal(tf.getBackend(), 'wasm');
  });

  test("device 'cuda' without tfjs-node-gpu says what to install", async () => {
    await assert.rejects(initBackend({ device: 'cuda' }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /npm i @tensorflow\/tfjs-node-gpu/);
      assert.match(e.message, /CUDA-enabled machine/);
      return true;
    });
    assert.equal(tf.getBackend(), 'wasm');
  });

  test('cpu can be chosen explicitly', async () => {
    assert.deepEqual(await initBackend({ backend: 'cpu' }), { backend: 'cpu', device: 'cpu' });
    assert.equal(tf.getBackend(), 'cpu');
    await initBackend({ backend: 'wasm' });
  });
});

describe('BatchMatMul', () => {
  const sizes: Array<[number, number, number]> = [
    [7, 13, 5],
    [64, 300, 33],
    [1, 17, 9],
    [128, 96, 5],
    [5, 96, 128],
  ];
  for (const [m, k, n] of sizes) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        test(`${m}x${k}x${n} transposeA=${ta} transposeB=${tb}`, async () => {
          const a = arg(ta ? [k, m] : [m, k], m * 31 + k);
          const b = arg(tb ? [n, k] : [k, n], n * 17 + k);
          await compare('matMul', [a, b], (x, y) => tf.matMul(x, y, ta, tb));
        });
      }
    }
  }

  test('batched and broadcast operands', async () => {
    const a = arg([3, 12, 20], 1);
    const b = arg([3, 9, 20], 2);
    const c = arg([1, 20, 9], 3);
    const d = arg([1, 20, 12], 4);
    await compare('batched', [a, b, c, d], (x, y, z, u) => [
      tf.matMul(x, y, false, true),
      tf.matMul(x, z),
      tf.matMul(y, z, true, true),
      tf.matMul(u, z, true, false),
      tf.matMul(z, u, true, false),
    ]);
  });

  test('fused matMul with bias and activation, all transpose flags', async () => {
    const bias = arg([11], 9);
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const a = arg(ta ? [40, 24] : [24, 40], 7);
        const b = arg(tb ? [11, 40] : [40, 11], 8);
        await compare(`fused ta=${ta} tb=${tb}`, [a, b, bias], (x, y, z) =>
          tf.fused.matMul({ a: x, b: y, transposeA: ta, transposeB: tb, bias: z, activation: 'relu' }),
        );
      }
    }
  });
});

interface ConvCase {
  batch: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  kh: number;
  kw: number;
  strides: [number, number];
  pad: Pad;
}

const convCases: ConvCase[] = [
  { batch: 2, h: 9, w: 9, ci: 3, co: 4, kh: 3, kw: 3, strides: [1, 1], pad: 'same' },
  { batch: 3, h: 10, w: 8, ci: 2, co: 5, kh: 3, kw: 3, strides: [2, 2], pad: 'same' },
  { batch: 2, h: 12, w: 11, ci: 4, co: 3, kh: 5, kw: 5, strides: [2, 2], pad: 'valid' },
  { batch: 2, h: 7, w: 7, ci: 3, co: 2, kh: 2, kw: 2, strides: [2, 2], pad: 'valid' },
  { batch: 2, h: 8, w: 9, ci: 3, co: 4, kh: 3, kw: 2, strides: [1, 2], pad: 'same' },
  { batch: 1, h: 6, w: 6, ci: 1, co: 1, kh: 3, kw: 3, strides: [1, 1], pad: 'valid' },
  {
    batch: 2,
    h: 7,
    w: 6,
    ci: 2,
    co: 3,
    kh: 3,
    kw: 3,
    strides: [2, 1],
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
  {
    batch: 2,
    h: 6,
    w: 7,
    ci: 3,
    co: 2,
    kh: 3,
    kw: 3,
    strides: [1, 1],
    pad: [
      [0, 0],
      [2, 0],
      [1, 1],
      [0, 0],
    ],
  },
  // Padding wider than the kernel: the stride-1 input gradient cannot be a plain convolution.
  {
    batch: 2,
    h: 5,
    w: 5,
    ci: 2,
    co: 3,
    kh: 2,
    kw: 2,
    strides: [1, 1],
    pad: [
      [0, 0],
      [2, 1],
      [0, 3],
      [0, 0],
    ],
  },
];

function outSize(size: number, k: number, s: number, pad: Pad, before: number, after: number): number {
  if (pad === 'same') return Math.ceil(size / s);
  if (pad === 'valid') return Math.ceil((size - k + 1) / s);
  return Math.floor((size + before + after - k) / s) + 1;
}

function dyShape(c: ConvCase): number[] {
  const [ph, pw] = Array.isArray(c.pad)
    ? [c.pad[1], c.pad[2]]
    : [
        [0, 0],
        [0, 0],
      ];
  return [
    c.batch,
    outSize(c.h, c.kh, c.strides[0], c.pad, ph[0], ph[1]),
    outSize(c.w, c.kw, c.strides[1], c.pad, pw[0], pw[1]),
    c.co,
  ];
}

function label(c: ConvCase): string {
  const pad = Array.isArray(c.pad) ? JSON.stringify(c.pad.slice(1, 3)) : c.pad;
  return `x[${c.batch},${c.h},${c.w},${c.ci}] k${c.kh}x${c.kw}→${c.co} s${c.strides.join('x')} ${pad}`;
}

/** Runs `body` with the column-matrix bound low enough that a 5-image batch takes 3 chunks. */
async function chunked(body: (c: ConvCase) => Promise<void>): Promise<void> {
  const c: ConvCase = { batch: 5, h: 9, w: 8, ci: 3, co: 4, kh: 3, kw: 3, strides: [2, 1], pad: 'same' };
  const perImage = Math.ceil(c.h / 2) * c.w * c.kh * c.kw * c.ci;
  const previous = setColumnBudget(2 * perImage);
  try {
    await body(c);
  } finally {
    setColumnBudget(previous);
  }
}

describe('Conv2DBackpropFilter', () => {
  for (const c of convCases) {
    test(label(c), async () => {
      const x = arg([c.batch, c.h, c.w, c.ci], c.h * 7 + c.ci);
      const dy = arg(dyShape(c), c.co * 13 + c.kh);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: [c.kh, c.kw, c.ci, c.co] };
      await compare('dW', [x, dy], (xt, dyt) =>
        tf.engine().runKernel<tf.Tensor>('Conv2DBackpropFilter', { x: xt, dy: dyt }, attrs),
      );
    });
  }

  test('NCHW data format', async () => {
    const c = convCases[1];
    const [b, oh, ow, co] = dyShape(c);
    const x = arg([c.batch, c.ci, c.h, c.w], 12);
    const dy = arg([b, co, oh, ow], 13);
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NCHW', filterShape: [c.kh, c.kw, c.ci, c.co] };
    await compare('dW NCHW', [x, dy], (xt, dyt) =>
      tf.engine().runKernel<tf.Tensor>('Conv2DBackpropFilter', { x: xt, dy: dyt }, attrs),
    );
  });

  test('batch split into several chunks', async () => {
    await chunked((c) => {
      const x = arg([c.batch, c.h, c.w, c.ci], 5);
      const dy = arg(dyShape(c), 6);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: [c.kh, c.kw, c.ci, c.co] };
      return compare('dW chunked', [x, dy], (xt, dyt) =>
        tf.engine().runKernel<tf.Tensor>('Conv2DBackpropFilter', { x: xt, dy: dyt }, attrs),
      );
    });
  });
});

describe('Conv2DBackpropInput', () => {
  for (const c of convCases) {
    test(label(c), async () => {
      const dy = arg(dyShape(c), c.co * 11 + c.kw);
      const filter = arg([c.kh, c.kw, c.ci, c.co], c.ci * 3 + c.kh);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: [c.batch, c.h, c.w, c.ci] };
      await compare('dx', [dy, filter], (dyt, ft) =>
        tf.engine().runKernel<tf.Tensor>('Conv2DBackpropInput', { dy: dyt, filter: ft }, attrs),
      );
    });
  }

  test('NCHW data format', async () => {
    const c = convCases[1];
    const [b, oh, ow, co] = dyShape(c);
    const dy = arg([b, co, oh, ow], 14);
    const filter = arg([c.kh, c.kw, c.ci, c.co], 15);
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NCHW', inputShape: [c.batch, c.ci, c.h, c.w] };
    await compare('dx NCHW', [dy, filter], (dyt, ft) =>
      tf.engine().runKernel<tf.Tensor>('Conv2DBackpropInput', { dy: dyt, filter: ft }, attrs),
    );
  });

  test('batch split into several chunks', async () => {
    await chunked((c) => {
      const dy = arg(dyShape(c), 7);
      const filter = arg([c.kh, c.kw, c.ci, c.co], 8);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: [c.batch, c.h, c.w, c.ci] };
      return compare('dx chunked', [dy, filter], (dyt, ft) =>
        tf.engine().runKernel<tf.Tensor>('Conv2DBackpropInput', { dy: dyt, filter: ft }, attrs),
      );
    });
  });

  test('conv2dTranspose (its forward pass)', async () => {
    const x = arg([2, 5, 4, 6], 21);
    const f = arg([3, 3, 2, 6], 22);
    await compare('conv2dTranspose', [x, f], (xt, ft) =>
      tf.conv2dTranspose(xt as tf.Tensor4D, ft as tf.Tensor4D, [2, 10, 8, 2], 2, 'same'),
    );
  });
});

describe('memory', () => {
  test('no backend storage outlives the kernels', async () => {
    await tf.setBackend('wasm');
    const backend = tf.engine().backend;
    const x = tf.tensor(randn(2 * 9 * 9 * 3, 51), [2, 9, 9, 3]);
    const w = tf.tensor(randn(3 * 3 * 3 * 4, 52), [3, 3, 3, 4]);
    const a = tf.tensor(randn(40 * 30, 53), [40, 30]);
    const before = backend.numDataIds();
    const run = (): void => {
      tf.tidy(() => {
        tf.matMul(a, a, true, false).dataSync();
        tf.matMul(a, a, false, true).dataSync();
        tf.matMul(a, tf.ones([5, 30]), false, true).dataSync();
        tf.matMul(a, tf.ones([40, 5]), true, false).dataSync();
        for (const stride of [1, 2]) {
          const loss = (xx: tf.Tensor, ww: tf.Tensor): tf.Scalar =>
            tf.sum(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, stride, 'same'));
          tf.grads(loss)([x, w]).forEach((g) => g.dataSync());
        }
        tf.engine()
          .runKernel<tf.Tensor>(
            'Conv2DBackpropInput',
            { dy: tf.transpose(tf.ones([2, 5, 9, 4]), [0, 3, 1, 2]), filter: w },
            {
              strides: [2, 1],
              pad: 'same',
              dataFormat: 'NCHW',
              inputShape: [2, 3, 9, 9],
            },
          )
          .dataSync();
      });
    };
    run();
    assert.equal(backend.numDataIds(), before);
    tf.dispose([x, w, a]);
  });
});

describe('gradients', () => {
  test('small conv net: d loss / d (x, w1, w2)', async () => {
    const x = arg([3, 10, 10, 2], 31);
    const w1 = arg([3, 3, 2, 4], 32);
    const w2 = arg([3, 3, 4, 5], 33);
    await compare('conv grads', [x, w1, w2], (xt, a, b) =>
      tf.grads((xx: tf.Tensor, p: tf.Tensor, q: tf.Tensor) => {
        const h = tf.relu(tf.conv2d(xx as tf.Tensor4D, p as tf.Tensor4D, 1, 'same'));
        const y = tf.conv2d(h, q as tf.Tensor4D, 2, 'valid');
        return tf.mean(tf.square(y));
      })([xt, a, b]),
    );
  });

  test('dense layers: d loss / d (x, W1, b1, W2)', async () => {
    const x = arg([32, 10], 41);
    const w1 = arg([10, 24], 42);
    const b1 = arg([24], 43);
    const w2 = arg([24, 3], 44);
    await compare('dense grads', [x, w1, b1, w2], (xt, a, b, c) =>
      tf.grads((xx: tf.Tensor, p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => {
        const h = tf.relu(tf.add(tf.matMul(xx, p), q));
        return tf.mean(tf.square(tf.matMul(h, r)));
      })([xt, a, b, c]),
    );
  });
});
