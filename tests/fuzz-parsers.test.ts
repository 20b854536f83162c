/**
 * Hostile bytes for every parser that reads what a user, a store or a network hands us: YAML
 * configs, safetensors, ONNX models, CIFAR-10 batches, tar and tar.gz archives, image files,
 * and the campaign's stored records. Each property feeds random bytes and seeded mutations of
 * a valid file (flipped bytes, truncations, spliced junk) and demands either a parse or that
 * parser's typed error: no other exception, no hang, no huge allocation, nothing stored.
 *
 * Runs are seeded and bounded (FUZZ_SEED, FUZZ_RUNS scale them for the soak's longer run).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import sharp from 'sharp';

import { ConfigFileError, parseConfigText } from '../engines/config-file.js';
import { ConfigError } from '../workflows/config.js';
import { MAX_ARRAY_VALUES, MAX_LAYER_WIDTH } from '../engines/config-limits.js';
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from '../models/safetensors.js';
import { ndarray } from '../models/ndarray.js';
import { initMlpParams, type MlpConfig } from '../models/denoisers/mlp.js';
import { exportMlpToOnnx } from '../models/onnx/export-mlp.js';
import { MalformedModelError, OnnxDenoiser } from '../models/onnx/runtime.js';
import { Rng } from '../models/rng.js';
import { CIFAR10_RECORD_BYTES, decodeCifar10 } from '../models/datasets/cifar10.js';
import { DatasetFileError } from '../models/datasets/errors.js';
import { tarEntries, tarGzEntries, writeTar } from '../models/datasets/tar.js';
import { loadImageFolder } from '../models/datasets/folder.js';
import { FsArtifactStore } from '../store/fs.js';
import { ArtifactCorruptError, putJson } from '../store/store.js';
import { listSteps, readLapRecords, readManifest, readStatus, readStep, readSummary } from '../engines/records.js';
import { campaignHistory } from '../cli/history.js';
import { campaignKeys } from '../workflows/keys.js';

const SEED = Number(process.env.FUZZ_SEED ?? 13);
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number) => ({ seed: SEED, numRuns: Math.max(1, Math.round(n * SCALE)) });

/** A valid file damaged by up to 8 byte writes, an optional cut and optional spliced junk. */
function mutated(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc
    .record({
      writes: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      junk: fc.option(fc.tuple(fc.nat(), fc.uint8Array({ maxLength: 64 })), { nil: undefined }),
    })
    .map(({ writes, cut, junk }) => {
      let bytes = Uint8Array.from(base);
      for (const [at, value] of writes) if (bytes.length) bytes[at % bytes.length] = value;
      if (junk) {
        const at = junk[0] % (bytes.length + 1);
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...junk[1], ...bytes.subarray(at)]);
      }
      if (cut !== undefined) bytes = bytes.subarray(0, cut % (bytes.length + 1));
      return bytes;
    });
}

const hostile = (base: Uint8Array) => fc.oneof(mutated(base), fc.uint8Array({ maxLength: 2048 }));

type ErrorClass = abstract new (...args: never[]) => Error;

/** Runs `parse`; a throw must be an instance of one of `types` with a non-empty message. */
function refusedWith(error: unknown, types: ErrorClass[]): void {
  if (!types.some((type) => error instanceof type)) throw error;
  assert.ok((error as Error).message.length > 0);
}

function parsesOrRefusesSync(parse: () => unknown, ...types: ErrorClass[]): void {
  try {
    parse();
  } catch (error) {
    refusedWith(error, types);
  }
}

async function parsesOrRefuses(parse: () => Promise<unknown>, ...types: ErrorClass[]): Promise<void> {
  try {
    await parse();
  } catch (error) {
    refusedWith(error, types);
  }
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-fuzz-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TINY_CONFIG = `
seed: 7
data: { kind: manifold, dim: 5, count: 1024 }
channel: { kind: projection, obsDim: 2, noiseStd: 0.01 }
model: { hidden: [64, 64], embedDim: 16 }
em: { laps: 2, gaussianIterations: 16, shardSize: 512, concurrency: 2 }
estep: { steps: 16 }
training: { steps: 60, batchSize: 256, checkpointEvery: 20 }
prior: { steps: 60, samples: 512, samplerSteps: 16 }
metrics: { samples: 256 }
`;

describe('YAML configs', () => {
  test('any text: a config or ConfigFileError / ConfigError', () => {
    const base = new TextEncoder().encode(TINY_CONFIG);
    fc.assert(
      fc.property(
        fc.oneof(
          hostile(base).map((b) => Buffer.from(b).toString('utf8')),
          fc.string(),
        ),
        (text) => parsesOrRefusesSync(() => parseConfigText(text, 'fuzz.yaml'), ConfigFileError, ConfigError),
      ),
      runs(400),
    );
  });

  test('random field values in a valid config are refused by name, not crashed on', () => {
    const fields = ['seed', 'data', 'channel', 'model', 'em', 'estep', 'training', 'prior', 'metrics'];
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.jsonValue({ maxDepth: 3 }), (field, value) =>
        parsesOrRefusesSync(
          () =>
            parseConfigText(
              TINY_CONFIG.replace(new RegExp(`^${field}:.*$`, 'm'), `${field}: ${JSON.stringify(value)}`),
              'fuzz.yaml',
            ),
          ConfigError,
        ),
      ),
      runs(300),
    );
  });

  test('sizes whose arrays would not fit in memory are refused by field, before anything allocates', () => {
    const size = fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.constantFrom(2 ** 31, 1e12, 2 ** 53 - 1));
    fc.assert(
      fc.property(size, size, size, size, (count, dim, width, batch) => {
        const text = TINY_CONFIG.replace(/^data:.*$/m, `data: { kind: manifold, dim: ${dim}, count: ${count} }`)
          .replace(/^model:.*$/m, `model: { hidden: [${width}, 64], embedDim: 16 }`)
          .replace(/^training:.*$/m, `training: { steps: 60, batchSize: ${batch}, checkpointEvery: 20 }`);
        const fits = count * dim <= MAX_ARRAY_VALUES && batch * dim <= MAX_ARRAY_VALUES && width <= MAX_LAYER_WIDTH;
        if (fits && dim * 512 <= MAX_ARRAY_VALUES) assert.equal(parseConfigText(text, 'fuzz.yaml').data.count, count);
        else if (!fits)
          assert.throws(
            () => parseConfigText(text, 'fuzz.yaml'),
            /data\.count|training\.batchSize|model\.hidden\.0|prior\.samples/,
          );
      }),
      runs(300),
    );
  });

  test('an alias bomb (billion laughs) is refused quickly instead of expanded', () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) {
      const p = String.fromCharCode(97 + i - 1);
      levels.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${p}`).join(',')}]`,
      );
    }
    const started = performance.now();
    assert.throws(() => parseConfigText(levels.join('\n'), 'bomb.yaml'), ConfigFileError);
    assert.ok(performance.now() - started < 5000);
  });
});

describe('safetensors', () => {
  const valid = encodeSafetensors(
    {
      w: ndarray(
        [3, 4],
        Float32Array.from({ length: 12 }, (_, i) => i / 7),
      ),
      b: ndarray([2]),
    },
    { step: '3' },
  );

  test('random and damaged files: tensors or SafetensorsError', () => {
    fc.assert(
      fc.property(hostile(valid), (bytes) =>
        parsesOrRefusesSync(() => decodeSafetensors(bytes, 'fuzz'), SafetensorsError),
      ),
      runs(1000),
    );
  });

  test('hostile headers: huge lengths, offsets and shapes are refused before allocating', () => {
    const header = (json: string, declared = json.length) => {
      const body = new TextEncoder().encode(json);
      const out = new Uint8Array(8 + body.length + 16);
      new DataView(out.buffer).setBigUint64(0, BigInt(declared), true);
      out.set(body, 8);
      return out;
    };
    const big = fc.oneof(fc.constant(1e15), fc.constant(2 ** 53 - 1), fc.nat(), fc.constant(-1), fc.double());
    fc.assert(
      fc.property(big, big, big, fc.constantFrom('F32', 'F64', 'BF16', 'U8', 'X9'), (a, b, c, dtype) => {
        const json = JSON.stringify({ t: { dtype, shape: [a, b], data_offsets: [0, c] } });
        const before = process.memoryUsage().arrayBuffers;
        assert.throws(() => decodeSafetensors(header(json), 'fuzz'), SafetensorsError);
        assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20);
      }),
      runs(300),
    );
    // The declared header length itself: 1e15 bytes is refused without reading, let alone allocating.
    assert.throws(() => decodeSafetensors(header('{}', 1e15), 'fuzz'), /header length 1000000000000000 exceeds/);
  });
});

describe('ONNX models', () => {
  const config: MlpConfig = { dim: 3, condDim: 2, hidden: [7, 3], embedDim: 4 };
  const valid = exportMlpToOnnx(config, initMlpParams(config, Rng.derive(SEED, 'fuzz-onnx')));

  test('random and damaged model files: a denoiser or MalformedModelError', async () => {
    await fc.assert(
      fc.asyncProperty(hostile(valid), async (bytes) => {
        let denoiser: OnnxDenoiser | undefined;
        await parsesOrRefuses(async () => {
          denoiser = await OnnxDenoiser.create(bytes, { ...config, device: 'cpu', threads: 1 });
        }, MalformedModelError);
        await denoiser?.dispose();
      }),
      runs(40),
    );
  });
});

describe('CIFAR-10 batches and archives', () => {
  const record = (label: number) => Uint8Array.from({ length: CIFAR10_RECORD_BYTES }, (_, i) => (i ? i % 251 : label));
  const batch = Uint8Array.from([...record(3), ...record(9)]);

  test('binary batches: images or DatasetFileError', () => {
    fc.assert(
      fc.property(hostile(batch), (bytes) =>
        parsesOrRefusesSync(() => decodeCifar10(bytes, 'fuzz.bin'), DatasetFileError),
      ),
      runs(200),
    );
  });

  const tar = writeTar([
    { name: 'cifar-10-batches-bin/data_batch_1.bin', data: batch },
    { name: 'cifar-10-batches-bin/readme.html', data: new TextEncoder().encode('<p>hi</p>') },
  ]);
  const drain = async (entries: AsyncIterable<unknown>) => {
    for await (const _ of entries);
  };

  test('tar streams: members or DatasetFileError; a member claiming 8 GiB is refused unread', async () => {
    await fc.assert(
      fc.asyncProperty(hostile(tar), async (bytes) => {
        async function* chunks() {
          yield Buffer.from(bytes);
        }
        await parsesOrRefuses(() => drain(tarEntries(chunks(), 'fuzz.tar')), DatasetFileError);
      }),
      runs(300),
    );
    const huge = Buffer.from(tar);
    huge.write('77777777777\0', 124, 'latin1');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : huge[i];
    huge.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    async function* one() {
      yield huge;
    }
    await assert.rejects(drain(tarEntries(one(), 'huge.tar')), /exceeds the 1073741824-byte limit/);
  });

  test('tar.gz files: members or DatasetFileError; a missing file is an error, not a hang', async () => {
    const gz = gzipSync(tar);
    const file = path.join(dir, 'fuzz.tar.gz');
    await fc.assert(
      fc.asyncProperty(hostile(gz), async (bytes) => {
        await writeFile(file, bytes);
        await parsesOrRefuses(() => drain(tarGzEntries(file)), DatasetFileError);
      }),
      runs(150),
    );
    await assert.rejects(drain(tarGzEntries(path.join(dir, 'absent.tar.gz'))), { code: 'ENOENT' });
  });
});

describe('image folders (sharp)', () => {
  test('random and damaged image files: images or DatasetFileError', async () => {
    const png = new Uint8Array(
      await sharp({ create: { width: 6, height: 5, channels: 3, background: { r: 200, g: 10, b: 90 } } })
        .png()
        .toBuffer(),
    );
    const jpeg = new Uint8Array(await sharp(Buffer.from(png)).jpeg().toBuffer());
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(hostile(png), hostile(jpeg)), async (bytes) => {
        const folder = path.join(dir, `images-${n++}`);
        await rm(folder, { recursive: true, force: true });
        await import('node:fs/promises').then((fs) => fs.mkdir(folder));
        await writeFile(path.join(folder, 'a.png'), bytes);
        await parsesOrRefuses(() => loadImageFolder(folder, { height: 4, width: 4, channels: 3 }), DatasetFileError);
      }),
      runs(60),
    );
  });
});

describe('stored records (journal, lap records, status, manifest, summary, history)', () => {
  const execution = { attempt: 1, startedAt: '2026-01-01T00:00:00Z', outcome: 'done' };
  const step = {
    step: 'lap-001/train',
    activity: 'train',
    inputDigest: 'ab',
    status: 'done',
    executions: [execution],
    output: { x: 1 },
  };
  const lap = {
    lap: 1,
    metrics: { sinkhorn: 1.5 },
    artifacts: [{ key: 'campaigns/c/x', sha256: 'a'.repeat(64), bytes: 3 }],
    seconds: 2,
    seeds: { train: 'seed/1' },
    steps: [{ step: 'lap-001/train', activity: 'train', seconds: 1, attempt: 1 }],
    attempts: 1,
    failures: 0,
    evaluations: 10,
  };
  const manifest = {
    campaignId: 'c',
    engine: 'local',
    config: { seed: 1, em: { laps: 2 } },
    configDigest: 'd',
    createdAt: '2026-01-01T00:00:00Z',
  };

  /** A JSON value near `valid`: one field replaced or dropped, at any depth. */
  function nearby(valid: unknown): fc.Arbitrary<unknown> {
    return fc.tuple(fc.nat(), fc.jsonValue({ maxDepth: 2 }), fc.boolean()).map(([pick, value, drop]) => {
      const copy = structuredClone(valid) as Record<string, unknown>;
      const paths: Array<[Record<string, unknown>, string]> = [];
      const visit = (node: unknown) => {
        if (node && typeof node === 'object')
          for (const [k, v] of Object.entries(node)) {
            paths.push([node as Record<string, unknown>, k]);
            visit(v);
          }
      };
      visit(copy);
      const [parent, key] = paths[pick % paths.length];
      if (drop) delete parent[key];
      else parent[key] = value;
      return copy;
    });
  }

  const payload = (valid: unknown) =>
    fc.oneof(
      nearby(valid).map((v) => new TextEncoder().encode(JSON.stringify(v))),
      hostile(new TextEncoder().encode(JSON.stringify(valid))),
      fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v) ?? 'null')),
    );

  test('damaged records: read back whole or ArtifactCorruptError naming the key; readers write nothing', async () => {
    const store = new FsArtifactStore(path.join(dir, 'records'));
    const id = 'c';
    await putJson(store, campaignKeys.manifest(id), manifest);
    const targets = [
      { key: campaignKeys.step(id, 'lap-001/train'), valid: step },
      { key: `${campaignKeys.lapRecordsPrefix(id)}lap-001.json`, valid: lap },
      { key: campaignKeys.status(id), valid: { status: 'running', updatedAt: 'now', pid: 3 } },
      { key: campaignKeys.summary(id), valid: { campaignId: id, laps: 1, priorMetrics: {}, figures: [] } },
      { key: campaignKeys.manifest(id), valid: manifest },
    ];
    const listing = async () => (await readdir(store.root, { recursive: true })).sort().join('\n');
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: targets.length - 1 }).chain((i) => fc.tuple(fc.constant(i), payload(targets[i].valid))),
        async ([i, bytes]) => {
          const target = targets[i];
          for (const t of targets) await putJson(store, t.key, t.valid);
          await store.put(target.key, bytes);
          const before = await listing();
          const readers = [
            () => readStep(store, id, 'lap-001/train'),
            () => listSteps(store, id),
            () => readLapRecords(store, id),
            () => readStatus(store, id),
            () => readSummary(store, id),
            () => readManifest(store, id),
            () => campaignHistory(store, id),
          ];
          for (const read of readers) {
            try {
              await read();
            } catch (error) {
              if (!(error instanceof ArtifactCorruptError)) throw error;
              assert.ok(error.message.includes(error.key), error.message);
            }
          }
          assert.equal(await listing(), before);
          assert.deepEqual(new Uint8Array(await readFile(store.pathOf(target.key))), bytes);
        },
      ),
      runs(60),
    );
  });

  test('a journal record that is valid JSON of the wrong shape is refused, not taken for "no record"', async () => {
    const store = new FsArtifactStore(path.join(dir, 'null-record'));
    await store.put(campaignKeys.step('c', 'lap-000/data'), new TextEncoder().encode('null\n'));
    await assert.rejects(readStep(store, 'c', 'lap-000/data'), ArtifactCorruptError);
    await store.put(campaignKeys.step('c', 'lap-000/data'), new TextEncoder().encode('{"step": 5}\n'));
    await assert.rejects(readStep(store, 'c', 'lap-000/data'), /field step/);
  });
});
