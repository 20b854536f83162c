import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../models/backend.js';
import { initUnetParams, UnetNetwork, type UnetConfig } from '../models/denoisers/unet.js';
import type { ParamMap } from '../models/denoisers/mlp.js';
import { DifferentiableUnet } from '../models/guidance/unet.js';
import { OnnxDifferentiableDenoiser } from '../models/guidance/onnx-network.js';
import { exportUnetToOnnx, exportUnetVjpToOnnx } from '../models/onnx/export-unet.js';
import { GraphBuilder } from '../models/onnx/graph.js';
import { appendVjp } from '../models/onnx/vjp.js';
import { Rng } from '../models/rng.js';
import { maxRelativeError } from './helpers/relative-error.js';

/** Initial weights with every tensor perturbed, so that no path (zero-initialised output convs) is dead. */
function randomParams(config: UnetConfig, seed: number): ParamMap {
  const params = initUnetParams(config, Rng.derive(seed, 'init'));
  const rng = Rng.derive(seed, 'perturb');
  for (const [name, tensor] of Object.entries(params)) {
    const noise = rng.fillNormal(new Float64Array(tensor.data.length));
    const scale =
      name.endsWith('.weight') && tensor.shape.length > 1
        ? 0.3 / Math.sqrt(tensor.shape[tensor.shape.length - 2])
        : 0.2;
    tensor.data.forEach((v, i) => (tensor.data[i] = v + scale * noise[i]));
  }
  return params;
}

const CASES: Array<[string, UnetConfig]> = [
  [
    'the MNIST example U-Net (strided-conv downsampling, attention in the middle)',
    {
      height: 28,
      width: 28,
      channels: 1,
      condChannels: 0,
      levels: [8, 16, 16],
      blocksPerLevel: 1,
      attentionLevels: [],
      embedDim: 16,
      dropout: 0,
      groups: 4,
    },
  ],
  [
    'odd sides, average-pool downsampling, attention at a level, two blocks, two channels',
    {
      height: 7,
      width: 5,
      channels: 2,
      condChannels: 0,
      levels: [4, 8],
      blocksPerLevel: 2,
      attentionLevels: [1],
      embedDim: 8,
      dropout: 0,
      groups: 2,
      downsample: 'avgpool',
    },
  ],
];

for (const [what, config] of CASES) {
  test(`the ONNX VJP graph matches tfjs's autodiff: ${what}`, async () => {
    await initBackend({ device: 'cpu' });
    const params = randomParams(config, 11);
    const onnx = await OnnxDifferentiableDenoiser.create(
      exportUnetToOnnx(config, params),
      exportUnetVjpToOnnx(config, params),
      { dim: config.height * config.width * config.channels, threads: 1, batchSize: 2 },
    );
    const tfjs = new DifferentiableUnet(UnetNetwork.fromParams(config, params, false));
    const rng = Rng.derive(12, 'point');
    const n = 3;
    const d = onnx.dim;
    const x = rng.fillNormal(new Float64Array(n * d));
    const sigma = [0.05, 1, 20];
    const v = rng.fillNormal(new Float64Array(n * d));
    const [a, b] = [await onnx.linearize(x, sigma), await tfjs.linearize(x, sigma)];
    assert.ok(maxRelativeError(b.value, a.value) < 1e-4, `denoised: ${maxRelativeError(b.value, a.value)}`);
    const [ja, jb] = [await a.vjp(v), await b.vjp(v)];
    // Not trivially equal: the VJP is no multiple of v, and it differs from row to row.
    assert.ok(maxRelativeError(v, ja) > 0.1);
    assert.ok(maxRelativeError(jb, ja) < 1e-3, `J^T v: max relative error ${maxRelativeError(jb, ja)}`);
    assert.equal(onnx.passes, 2);
    a.dispose();
    b.dispose();
    await onnx.dispose();
    tfjs.dispose();
  });
}

test('the ONNX VJP matches central differences, coordinate by coordinate, at odd sides with average pooling', async () => {
  // The case where tf.avgPool's own gradient was wrong at the padded edge (models/denoisers/unet.ts).
  const [, config] = CASES[1];
  const params = randomParams(config, 13);
  const onnx = await OnnxDifferentiableDenoiser.create(
    exportUnetToOnnx(config, params),
    exportUnetVjpToOnnx(config, params),
    { dim: config.height * config.width * config.channels, threads: 1 },
  );
  const rng = Rng.derive(14, 'point');
  const d = onnx.dim;
  const x = rng.fillNormal(new Float64Array(d));
  const v = rng.fillNormal(new Float64Array(d));
  const vjp = await (await onnx.linearize(x, [1])).vjp(v);
  const h = 1e-2;
  const differences = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    const plus = Float64Array.from(x);
    const minus = Float64Array.from(x);
    plus[j] += h;
    minus[j] -= h;
    const [up, down] = [(await onnx.linearize(plus, [1])).value, (await onnx.linearize(minus, [1])).value];
    for (let k = 0; k < d; k++) differences[j] += (v[k] * (up[k] - down[k])) / (2 * h);
  }
  assert.ok(maxRelativeError(differences, vjp) < 2e-3, `max relative error ${maxRelativeError(differences, vjp)}`);
  await onnx.dispose();
});

test('appendVjp refuses an operator it has no rule for, naming it', () => {
  const g = new GraphBuilder('unsupported');
  const x = g.input('x', ['N', 3]);
  g.node('Erf', [x], {}, 'y');
  assert.throws(
    () => appendVjp(g, { output: 'y', wrt: x, cotangent: g.input('v', ['N', 3]) }),
    /no derivative rule for Erf/,
  );
});

test('appendVjp refuses an output that does not depend on x', () => {
  const g = new GraphBuilder('constant');
  const x = g.input('x', ['N', 3]);
  const s = g.input('s', ['N', 3]);
  g.node('Sigmoid', [s], {}, 'y');
  assert.throws(
    () => appendVjp(g, { output: 'y', wrt: x, cotangent: g.input('v', ['N', 3]) }),
    /does not depend on 'x'/,
  );
});
