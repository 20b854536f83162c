import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { NDArray } from '../models/ndarray.js';
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from '../models/safetensors.js';

const SOURCE = 'runs/r1/lap-3/weights.safetensors';
const ascii = (text: string): number[] => [...new TextEncoder().encode(text)];

function bytesOfFloats(data: Float32Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A file with an arbitrary header, padded like the reference writer. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + padded + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  out.set(data, 8 + padded);
  return out;
}

function assertInvalid(bytes: Uint8Array, reason: RegExp): void {
  assert.throws(
    () => decodeSafetensors(bytes, SOURCE),
    (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
      assert.equal(err.source, SOURCE);
      assert.equal(err.type, 'SafetensorsInvalid');
      assert.ok(err.message.includes(SOURCE), err.message);
      assert.match(err.message, reason);
      return true;
    },
  );
}

describe('safetensors', () => {
  it('round-trips tensors and metadata bit-exactly', () => {
    const tensors: Record<string, NDArray> = {
      'net.w': { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, -0, 1e-30]) },
      'net.b': { shape: [3], data: new Float32Array([NaN, Infinity, -Infinity]) },
      scalar: { shape: [], data: new Float32Array([42]) },
      empty: { shape: [0, 4], data: new Float32Array(0) },
    };
    const metadata = { lap: '3', format: 'diffem' };
    const { tensors: back, metadata: meta } = decodeSafetensors(encodeSafetensors(tensors, metadata), SOURCE);
    assert.deepEqual(meta, metadata);
    assert.deepEqual(Object.keys(back).sort(), Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      assert.deepEqual(back[name].shape, t.shape);
      assert.ok(back[name].data instanceof Float32Array);
      assert.equal(bytesOfFloats(back[name].data).compare(bytesOfFloats(t.data)), 0, name);
    }
    assert.deepEqual(decodeSafetensors(encodeSafetensors({})).metadata, {});
  });

  it('writes deterministic bytes whatever the insertion order', () => {
    const a = { shape: [2], data: new Float32Array([1, 2]) };
    const b = { shape: [1], data: new Float32Array([3]) };
    const one = encodeSafetensors({ b, a, '10': a, '2': b }, { y: '1', x: '2' });
    const two = encodeSafetensors({ '2': b, a, '10': a, b }, { x: '2', y: '1' });
    assert.equal(Buffer.compare(one, two), 0);
    const headerLength = Number(new DataView(one.buffer).getBigUint64(0, true));
    const header = new TextDecoder().decode(one.subarray(8, 8 + headerLength)).trimEnd();
    // UTF-8 byte order, not JavaScript's integer-keys-first object order.
    assert.ok(header.startsWith('{"__metadata__":{"x":"2","y":"1"},"10":'), header);
    const at = (name: string): number => header.indexOf(`"${name}":{"dtype"`);
    assert.ok(at('10') < at('2') && at('2') < at('a') && at('a') < at('b'), header);
  });

  it('lays out a tiny file byte-for-byte as the spec and reference writer do', () => {
    const data = new Float32Array([0, 1, 2, 3, 4, 5]);
    const header = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    assert.equal(header.length, 65); // padded with 7 spaces to 72, a multiple of 8
    const expected = [
      ...[72, 0, 0, 0, 0, 0, 0, 0], // u64 little-endian header length
      ...ascii(header),
      ...ascii('       '),
      ...[0, 0, 0, 0], // 0.0f32
      ...[0, 0, 128, 63], // 1.0 = 0x3f800000, little-endian
      ...[0, 0, 0, 64], // 2.0 = 0x40000000
      ...[0, 0, 64, 64], // 3.0 = 0x40400000
      ...[0, 0, 128, 64], // 4.0 = 0x40800000
      ...[0, 0, 160, 64], // 5.0 = 0x40a00000
    ];
    assert.deepEqual([...encodeSafetensors({ attn0: { shape: [1, 1, 2, 3], data } })], expected);

    // The reference writer's empty files, with and without metadata.
    assert.deepEqual([...encodeSafetensors({})], [8, 0, 0, 0, 0, 0, 0, 0, ...ascii('{}      ')]);
    assert.deepEqual(
      [...encodeSafetensors({}, { framework: 'pt' })],
      [40, 0, 0, 0, 0, 0, 0, 0, ...ascii('{"__metadata__":{"framework":"pt"}}     ')],
    );
  });

  it('reads other numeric dtypes as float32', () => {
    const data = new Uint8Array(8 + 4 + 2 + 2 + 8 + 1);
    const view = new DataView(data.buffer);
    view.setFloat64(0, 0.1, true);
    view.setInt32(8, -7, true);
    view.setUint16(12, 0x3c00, true); // F16 1.0
    view.setUint16(14, 0xc040, true); // BF16 -3.0
    view.setBigInt64(16, 123456789n, true);
    view.setUint8(24, 200);
    const file = rawFile(
      {
        d: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
        i: { dtype: 'I32', shape: [1], data_offsets: [8, 12] },
        h: { dtype: 'F16', shape: [1], data_offsets: [12, 14] },
        bf: { dtype: 'BF16', shape: [1], data_offsets: [14, 16] },
        l: { dtype: 'I64', shape: [1], data_offsets: [16, 24] },
        u: { dtype: 'U8', shape: [1, 1], data_offsets: [24, 25] },
      },
      data,
    );
    const { tensors } = decodeSafetensors(file, SOURCE);
    assert.deepEqual([...tensors.d.data], [Math.fround(0.1)]);
    assert.deepEqual([...tensors.i.data], [-7]);
    assert.deepEqual([...tensors.h.data], [1]);
    assert.deepEqual([...tensors.bf.data], [-3]);
    assert.deepEqual([...tensors.l.data], [Math.fround(123456789)]);
    assert.deepEqual(tensors.u.shape, [1, 1]);
    assert.deepEqual([...tensors.u.data], [200]);
  });

  it('decodes from unaligned views into arrays it owns', () => {
    const file = encodeSafetensors({ x: { shape: [2], data: new Float32Array([1.5, -2.5]) } });
    const shifted = new Uint8Array(file.byteLength + 1);
    shifted.set(file, 1);
    const view = shifted.subarray(1);
    const { tensors } = decodeSafetensors(view, SOURCE);
    assert.deepEqual([...tensors.x.data], [1.5, -2.5]);
    view.fill(0, view.byteLength - 8);
    assert.deepEqual([...tensors.x.data], [1.5, -2.5]);
  });

  it('refuses to encode inconsistent tensors', () => {
    assert.throws(
      () => encodeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }),
      /'w'.*\[2, 2\].*3 elements/,
    );
    assert.throws(() => encodeSafetensors({ w: { shape: [-1], data: new Float32Array(0) } }), /'w'/);
    assert.throws(() => encodeSafetensors({ __metadata__: { shape: [0], data: new Float32Array(0) } }), /__metadata__/);
    assert.throws(() => encodeSafetensors({}, { k: 3 as unknown as string }), /'k'/);
  });

  describe('rejects malformed files, naming the source', () => {
    const good = encodeSafetensors({
      a: { shape: [2], data: new Float32Array([1, 2]) },
      b: { shape: [1], data: new Float32Array([3]) },
    });
    const f32 = (shape: number[], begin: number, end: number): object => ({
      dtype: 'F32',
      shape,
      data_offsets: [begin, end],
    });

    it('truncated before the header length', () => assertInvalid(good.subarray(0, 5), /truncated.*5 bytes/));
    it('truncated inside the header', () =>
      assertInvalid(good.subarray(0, 20), /truncated: header declares \d+ bytes but only 12/));
    it('truncated inside the data', () =>
      assertInvalid(good.subarray(0, good.byteLength - 2), /truncated: tensor 'b'.*run past/));
    it('absurd header length', () => {
      const bytes = new Uint8Array(16);
      new DataView(bytes.buffer).setBigUint64(0, 2n ** 40n, true);
      assertInvalid(bytes, /header length \d+ exceeds/);
    });
    it('header not UTF-8', () => {
      const bytes = rawFile('{}');
      bytes[9] = 0xff;
      assertInvalid(bytes, /not valid UTF-8/);
    });
    it('header not JSON', () => assertInvalid(rawFile('{"a": {"dtype": '), /not valid JSON/));
    it('header not an object', () => assertInvalid(rawFile('[1, 2]'), /not a JSON object/));
    it('entry not an object', () => assertInvalid(rawFile({ a: 3 }), /tensor 'a': header entry is not an object/));
    it('unsupported dtype', () =>
      assertInvalid(
        rawFile({ q: { dtype: 'Q4_K', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
        /tensor 'q': unsupported dtype 'Q4_K'/,
      ));
    it('missing dtype', () =>
      assertInvalid(rawFile({ q: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /'q': missing dtype/));
    it('bad shape', () => assertInvalid(rawFile({ a: f32([-1], 0, 4) }, new Uint8Array(4)), /'a': shape \[-1\]/));
    it('bad offsets', () => {
      assertInvalid(rawFile({ a: f32([1], 4, 0) }, new Uint8Array(4)), /'a': data_offsets \[4,0\]/);
      assertInvalid(
        rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4)),
        /'a': data_offsets/,
      );
      assertInvalid(rawFile({ a: f32([1], 0.5, 4) }, new Uint8Array(4)), /'a': data_offsets/);
    });
    it('shape and size mismatch', () =>
      assertInvalid(
        rawFile({ a: f32([3], 0, 8) }, new Uint8Array(8)),
        /'a': shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] span 8/,
      ));
    it('offsets out of range', () =>
      assertInvalid(rawFile({ a: f32([100], 0, 400) }, new Uint8Array(8)), /'a'.*run past the 8 data bytes/));
    it('overlapping tensors', () =>
      assertInvalid(
        rawFile({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, new Uint8Array(12)),
        /'b' \[4, 12\] overlaps tensor 'a'/,
      ));
    it('a hole between tensors', () =>
      assertInvalid(
        rawFile({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, new Uint8Array(12)),
        /unreferenced bytes \[4, 8\) before tensor 'b'/,
      ));
    it('trailing bytes', () => {
      const longer = new Uint8Array(good.byteLength + 4);
      longer.set(good);
      assertInvalid(longer, /4 trailing bytes/);
    });
    it('metadata not strings', () =>
      assertInvalid(rawFile({ __metadata__: { lap: 3 } }), /__metadata__ is not an object of strings/));
    it('default source name', () => assert.throws(() => decodeSafetensors(new Uint8Array(3)), /<safetensors bytes>/));
  });
});
