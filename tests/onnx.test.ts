/**
 * The ONNX export computes the same function as the tfjs MLP (`MlpNetwork.denoise`), and the
 * ONNX Runtime denoiser evaluates it in chunks, deterministically, with clear errors for a
 * missing CUDA provider, a malformed model and a model of the wrong shape.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '../models/tf.js';
import { initMlpParams, MlpNetwork, type MlpConfig, type ParamMap } from '../models/denoisers/mlp.js';
import { ndarray, type NDArray } from '../models/ndarray.js';
import { exportMlpToOnnx } from '../models/onnx/export-mlp.js';
import { decodeModel } from '../models/onnx/graph.js';
import { MalformedModelError, OnnxDenoiser, ortCudaUnavailableReason } from '../models/onnx/runtime.js';
import { Rng } from '../models/rng.js';

const TOLERANCE = 1e-5;

const CONFIGS: Record<string, MlpConfig> = {
  conditional: { dim: 5, condDim: 12, hidden: [256, 256, 256], embedDim: 64 },
  unconditional: { dim: 5, condDim: 0, hidden: [256, 256, 256], embedDim: 64 },
  odd: { dim: 3, condDim: 2, hidden: [7, 3], embedDim: 4 },
};

/** Default init, with LayerNorm gains and shifts moved off 1 and 0 so that they are exercised. */
function randomParams(config: MlpConfig, rng: Rng): ParamMap {
  const params = initMlpParams(config, rng);
  for (const [name, p] of Object.entries(params)) {
    if (name.endsWith('norm.weight')) for (let i = 0; i < p.data.length; i++) p.data[i] = 1 + 0.5 * rng.normal();
    if (name.endsWith('norm.bias')) rng.fillNormal(p.data, 0.3);
  }
  return params;
}

interface Batch {
  xt: NDArray;
  sigma: Float32Array;
  cond: NDArray | null;
}

/** x ~ N(0, 1), sigma log-uniform on [1e-3, 1e2], x_t = x + sigma z, cond ~ N(0, 1). */
function randomBatch(config: MlpConfig, n: number, rng: Rng): Batch {
  const sigma = new Float32Array(n);
  for (let i = 0; i < n; i++) sigma[i] = Math.exp(Math.log(1e-3) + rng.uniform() * Math.log(1e5));
  const xt = ndarray([n, config.dim]);
  for (let i = 0; i < xt.data.length; i++) xt.data[i] = rng.normal() + sigma[Math.floor(i / config.dim)] * rng.normal();
  const cond =
    config.condDim > 0 ? ndarray([n, config.condDim], rng.fillNormal(new Float32Array(n * config.condDim))) : null;
  return { xt, sigma, cond };
}

function tfjsDenoise(net: MlpNetwork, b: Batch): Float32Array {
  const n = b.sigma.length;
  const out = tf.tidy(() =>
    net.denoise(
      tf.tensor2d(b.xt.data, [n, net.config.dim]),
      tf.tensor1d(b.sigma),
      b.cond ? tf.tensor2d(b.cond.data, [n, net.config.condDim]) : null,
    ),
  );
  const data = out.dataSync() as Float32Array;
  out.dispose();
  return data;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

before(async () => {
  await tf.setBackend('cpu');
});

for (const [label, config] of Object.entries(CONFIGS)) {
  describe(`ONNX export matches tfjs: ${label}`, () => {
    const rng = Rng.derive(7, 'onnx-test', label);
    const params = randomParams(config, rng);
    const bytes = exportMlpToOnnx(config, params);
    let net: MlpNetwork;
    let onnx: OnnxDenoiser;

    before(async () => {
      net = MlpNetwork.fromParams(config, params, false);
      onnx = await OnnxDenoiser.create(bytes, { ...config, device: 'cpu', threads: 2, batchSize: 64 });
    });
    after(async () => {
      net.dispose();
      await onnx.dispose();
    });

    for (const n of [1, 37, 150]) {
      test(`batch ${n}${n > 64 ? ' (3 chunks of <= 64 rows)' : ''}`, async () => {
        const b = randomBatch(config, n, rng.fork('batch', n));
        const got = await onnx.denoise(b.xt, b.sigma, b.cond);
        assert.deepEqual(got.shape, [n, config.dim]);
        const err = maxAbsDiff(got.data, tfjsDenoise(net, b));
        assert.ok(err <= TOLERANCE, `max abs error ${err} > ${TOLERANCE}`);
      });
    }
  });
}

describe('ONNX model and runtime', () => {
  const config = CONFIGS.conditional;
  const params = randomParams(config, Rng.derive(7, 'onnx-test', 'runtime'));
  const bytes = exportMlpToOnnx(config, params);

  test('the model declares opset 17, IR 8, a symbolic batch and only the inputs it uses', () => {
    const model = decodeModel(bytes);
    assert.equal(Number(model.irVersion), 8);
    assert.deepEqual(
      model.opsetImport.map((o) => [o.domain, Number(o.version)]),
      [['', 17]],
    );
    assert.equal(model.producerName, 'diffem');
    const graph = model.graph;
    assert.ok(graph);
    assert.deepEqual(
      (graph.input ?? []).map((i) => i.name),
      ['x_t', 'sigma', 'cond'],
    );
    assert.equal(graph.input?.[0].type?.tensorType?.shape?.dim?.[0].dimParam, 'N');
    assert.deepEqual(
      (graph.output ?? []).map((o) => o.name),
      ['denoised'],
    );
    const unconditional = decodeModel(
      exportMlpToOnnx(CONFIGS.unconditional, randomParams(CONFIGS.unconditional, Rng.derive(1, 'u'))),
    );
    assert.deepEqual(
      (unconditional.graph?.input ?? []).map((i) => i.name),
      ['x_t', 'sigma'],
    );
  });

  test('same inputs and batchSize give the same bytes, across calls and thread counts', async () => {
    const b = randomBatch(config, 300, Rng.derive(7, 'onnx-test', 'determinism'));
    const one = await OnnxDenoiser.create(bytes, { ...config, device: 'cpu', threads: 1, batchSize: 100 });
    const two = await OnnxDenoiser.create(bytes, { ...config, device: 'cpu', threads: 2, batchSize: 100 });
    try {
      const first = await one.denoise(b.xt, b.sigma, b.cond);
      const again = await one.denoise(b.xt, b.sigma, b.cond);
      const threaded = await two.denoise(b.xt, b.sigma, b.cond);
      assert.ok(sameBytes(first.data, again.data), 'repeat call differs');
      assert.ok(sameBytes(first.data, threaded.data), '1 and 2 threads differ');
    } finally {
      await one.dispose();
      await two.dispose();
    }
  });

  test(
    "device 'cuda' without ORT's CUDA provider rejects, naming what to install",
    {
      skip: ortCudaUnavailableReason() === null ? 'the CUDA provider is installed here' : false,
    },
    async () => {
      await assert.rejects(OnnxDenoiser.create(bytes, { ...config, device: 'cuda' }), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.match(
          e.message,
          /ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules\/onnxruntime-node\/script\/install\.js/,
        );
        assert.match(e.message, /CUDA 12, cuDNN 9/);
        return true;
      });
    },
  );

  test(
    "device 'auto' falls back to the CPU when CUDA is unavailable",
    {
      skip: ortCudaUnavailableReason() === null ? 'the CUDA provider is installed here' : false,
    },
    async () => {
      const d = await OnnxDenoiser.create(bytes, { ...config, device: 'auto', threads: 1 });
      try {
        assert.equal(d.device, 'cpu');
        const b = randomBatch(config, 3, Rng.derive(7, 'onnx-test', 'auto'));
        assert.deepEqual((await d.denoise(b.xt, b.sigma, b.cond)).shape, [3, config.dim]);
      } finally {
        await d.dispose();
      }
    },
  );

  test('malformed model bytes give a clear error', async () => {
    for (const bad of [new Uint8Array([0xff, 0x01, 0x02, 0x03, 0x04]), bytes.subarray(0, 200), new Uint8Array(0)]) {
      await assert.rejects(OnnxDenoiser.create(bad, { ...config, device: 'cpu' }), (e: unknown) => {
        assert.ok(e instanceof MalformedModelError, String(e));
        assert.match(e.message, /could not load the model \(\d+ bytes\)/);
        return true;
      });
    }
  });

  test('a model of the wrong widths or conditioning is refused at creation', async () => {
    await assert.rejects(
      OnnxDenoiser.create(bytes, { dim: 6, condDim: 12, device: 'cpu' }),
      /'x_t' has shape \[N,5\], expected \[N, 6\]/,
    );
    await assert.rejects(OnnxDenoiser.create(bytes, { dim: 5, condDim: 0, device: 'cpu' }), /inputs \[cond\]/);
  });

  test('bad rows are refused, and a disposed denoiser stays disposed', async () => {
    const d = await OnnxDenoiser.create(bytes, { ...config, device: 'cpu', threads: 1 });
    const b = randomBatch(config, 4, Rng.derive(7, 'onnx-test', 'bad'));
    await assert.rejects(d.denoise(b.xt, b.sigma, null), /without conditioning/);
    await assert.rejects(d.denoise(b.xt, b.sigma.subarray(0, 3), b.cond), /sigma has 3 entries for 4 rows/);
    const empty = await d.denoise(ndarray([0, config.dim]), new Float32Array(0), ndarray([0, config.condDim]));
    assert.deepEqual(empty.shape, [0, config.dim]);
    await d.dispose();
    await assert.rejects(d.denoise(b.xt, b.sigma, b.cond), /after dispose/);
  });
});
