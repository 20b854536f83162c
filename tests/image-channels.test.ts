import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  gaussianKernel1d,
  imageChannel,
  type BlurChannelConfig,
  type ImageChannel,
  type ImageChannelConfig,
  type MaskChannelConfig,
} from '../models/channels/image.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { Rng } from '../models/rng.js';

const shape = { height: 9, width: 7, channels: 3, noiseStd: 0.1 };
const maskConfig: MaskChannelConfig = { kind: 'mask', rate: 0.5, ...shape };
const zeroBlur: BlurChannelConfig = { kind: 'blur', kernelSize: 7, sigma: 1.5, padding: 'zero', ...shape };
const configs: Record<string, ImageChannelConfig> = {
  mask: maskConfig,
  'blur reflect': { kind: 'blur', kernelSize: 5, sigma: [0.5, 2], padding: 'reflect', ...shape },
  'blur zero': zeroBlur,
  'blur wide reflect': { kind: 'blur', kernelSize: 13, sigma: 3, ...shape },
};

function randomImages(rng: Rng, n: number, channels = shape.channels): NDArray {
  return ndarray(
    [n, shape.height, shape.width, channels],
    rng.fillNormal(new Float32Array(n * shape.height * shape.width * channels)),
  );
}

function dot(a: NDArray, b: NDArray): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += a.data[i] * b.data[i];
  return s;
}

describe('image channels', () => {
  for (const [name, config] of Object.entries(configs)) {
    it(`${name}: <A x, y> = <x, A^T y>`, () => {
      const channel: ImageChannel = imageChannel(config);
      const rng = Rng.derive(1, name);
      const ops = channel.drawOperators(rng.fork('ops'), 4);
      const x = randomImages(rng, 4);
      const y = randomImages(rng, 4);
      const lhs = dot(channel.forward(ops, x), y);
      const rhs = dot(x, channel.adjoint(ops, y));
      assert.ok(Math.abs(lhs - rhs) <= 1e-5 * (Math.abs(lhs) + 1), `${lhs} vs ${rhs}`);
    });
  }

  it('blur preserves constants with reflect padding and matches the kernel in the interior', () => {
    const channel = imageChannel({ ...zeroBlur, sigma: 1, kernelSize: 3, padding: 'reflect' });
    const ops = channel.drawOperators(Rng.derive(2), 1);
    const ones = ndarray([1, 9, 7, 3]);
    ones.data.fill(1);
    for (const v of channel.forward(ops, ones).data) assert.ok(Math.abs(v - 1) < 1e-6);
    const impulse = ndarray([1, 9, 7, 3]);
    const at = (r: number, c: number, ch: number) => (r * 7 + c) * 3 + ch;
    impulse.data[at(4, 3, 1)] = 1;
    const out = channel.forward(ops, impulse);
    const k = gaussianKernel1d(3, 1);
    assert.ok(Math.abs(out.data[at(3, 2, 1)] - k[0] * k[0]) < 1e-6);
    assert.ok(Math.abs(out.data[at(4, 3, 1)] - k[1] * k[1]) < 1e-6);
    assert.equal(out.data[at(4, 3, 0)], 0, 'channels do not mix');
  });

  it('masks remove the configured fraction of pixels, shared across channels', () => {
    const channel = imageChannel(configs.mask);
    const rng = Rng.derive(3);
    const ops = channel.drawOperators(rng.fork('ops'), 200);
    assert.equal(ops.kind, 'mask');
    if (ops.kind !== 'mask') return;
    assert.deepEqual(ops.masks.shape, [200, 9, 7, 1]);
    const removed = ops.masks.data.reduce((a, m) => a + (m === 0 ? 1 : 0), 0) / ops.masks.data.length;
    // 12,600 Bernoulli(0.5) draws: standard error 0.0045.
    assert.ok(Math.abs(removed - 0.5) < 0.02, `removed fraction ${removed}`);
    const quarter = imageChannel({ ...maskConfig, rate: 0.9 }).drawOperators(rng.fork('q'), 200);
    if (quarter.kind === 'mask') {
      const r = quarter.masks.data.reduce((a, m) => a + (m === 0 ? 1 : 0), 0) / quarter.masks.data.length;
      assert.ok(Math.abs(r - 0.9) < 0.015, `removed fraction ${r}`);
    }

    const x = randomImages(rng, 200);
    const y = channel.apply(ops, x, rng.fork('noise'));
    const cond = channel.conditioning(ops, y);
    assert.deepEqual(cond.shape, [200, 9, 7, 4]);
    for (let p = 0; p < 200 * 63; p++) {
      const m: number = ops.masks.data[p];
      assert.equal(cond.data[p * 4 + 3], m);
      for (let c = 0; c < 3; c++) {
        if (m === 0) assert.equal(y.data[p * 3 + c], 0, 'removed in every channel');
        else
          assert.ok(
            y.data[p * 3 + c] !== 0 && Math.abs(y.data[p * 3 + c] - x.data[p * 3 + c]) < 1,
            'observed in every channel',
          );
        assert.equal(cond.data[p * 4 + c], y.data[p * 3 + c]);
      }
    }
  });

  it('adds observation noise of the configured scale', () => {
    const channel = imageChannel(configs['blur zero']);
    const rng = Rng.derive(4);
    const ops = channel.drawOperators(rng, 50);
    const x = randomImages(rng, 50);
    const clean = channel.forward(ops, x);
    const noisy = channel.apply(ops, x, rng);
    let ss = 0;
    for (let i = 0; i < clean.data.length; i++) ss += (noisy.data[i] - clean.data[i]) ** 2;
    const std = Math.sqrt(ss / clean.data.length);
    assert.ok(Math.abs(std - 0.1) < 0.005, `noise std ${std}`);
    assert.deepEqual(channel.conditioning(ops, noisy).data, noisy.data);
  });

  it('draws the same operators from the same stream and fresh ones from another', () => {
    for (const config of [configs.mask, configs['blur reflect']]) {
      const channel = imageChannel(config);
      const a = channel.drawOperators(Rng.derive(7, 'mstep', 1), 8);
      const b = channel.drawOperators(Rng.derive(7, 'mstep', 1), 8);
      const c = channel.drawOperators(Rng.derive(7, 'mstep', 2), 8);
      const data = (o: typeof a) => (o.kind === 'mask' ? o.masks.data : o.kernels.data);
      assert.deepEqual(data(a), data(b));
      assert.notDeepEqual(data(a), data(c));
    }
  });

  it('rejects invalid configurations and mismatched operators', () => {
    assert.throws(() => imageChannel({ ...maskConfig, rate: 1 }), /rate/);
    assert.throws(() => imageChannel({ ...zeroBlur, kernelSize: 4 }), /odd/);
    assert.throws(() => imageChannel({ ...zeroBlur, kernelSize: 21, padding: 'reflect' }), /reflect/);
    const mask = imageChannel(configs.mask);
    const blurOps = imageChannel(configs['blur zero']).drawOperators(Rng.derive(1), 1);
    assert.throws(() => mask.forward(blurOps, randomImages(Rng.derive(2), 1)), /blur operators/);
    assert.throws(() => mask.forward(mask.drawOperators(Rng.derive(1), 2), randomImages(Rng.derive(2), 1)), /masks/);
  });
});
