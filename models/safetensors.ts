/**
 * Tensor file format of every stored tensor and checkpoint: Hugging Face safetensors
 * (format spec: https://github.com/huggingface/safetensors, "Format" in its README).
 *
 *   bytes [0, 8)        N, the header length, unsigned 64-bit little-endian
 *   bytes [8, 8 + N)    UTF-8 JSON header, padded with spaces so the data starts 8-aligned:
 *                       {"__metadata__": {string: string}?,
 *                        name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
 *   bytes [8 + N, ...)  the tensors' raw little-endian data, offsets relative to here,
 *                       contiguous and covering the whole rest of the file
 *
 * A widely readable, non-executable format lets users audit artifacts outside diffem:
 * `safetensors.numpy.load_file(path)` in Python returns these arrays as numpy arrays.
 *
 * Writing emits F32 only, with tensors sorted by name (UTF-8 byte order) and metadata
 * keys sorted, so equal inputs give equal bytes, hence equal sha256 in the artifact store;
 * the layout matches the reference serializer byte-for-byte. Reading accepts the common
 * numeric dtypes and converts them to Float32, and validates the whole file first.
 */
import type { NDArray } from './ndarray.js';

export interface Safetensors {
  tensors: Record<string, NDArray>;
  metadata: Record<string, string>;
}

/** Malformed input; `source` names the key or file it came from. */
export class SafetensorsError extends Error {
  readonly type = 'SafetensorsInvalid' as const;
  override readonly name = 'SafetensorsError';
  constructor(
    readonly source: string,
    readonly reason: string,
  ) {
    super(`${source}: not a valid safetensors file: ${reason}`);
  }
}

/** Same bound as the reference implementation, against absurd allocations. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const bf16Bits = new Uint32Array(1);
const bf16Float = new Float32Array(bf16Bits.buffer);

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

interface DtypeReader {
  size: number;
  read(view: DataView, at: number): number;
}

const READERS: Record<string, DtypeReader> = {
  F64: { size: 8, read: (v, at) => v.getFloat64(at, true) },
  F32: { size: 4, read: (v, at) => v.getFloat32(at, true) },
  F16: { size: 2, read: (v, at) => halfToNumber(v.getUint16(at, true)) },
  BF16: {
    size: 2,
    read: (v, at) => {
      bf16Bits[0] = v.getUint16(at, true) << 16;
      return bf16Float[0];
    },
  },
  I64: { size: 8, read: (v, at) => Number(v.getBigInt64(at, true)) },
  I32: { size: 4, read: (v, at) => v.getInt32(at, true) },
  I16: { size: 2, read: (v, at) => v.getInt16(at, true) },
  I8: { size: 1, read: (v, at) => v.getInt8(at) },
  U8: { size: 1, read: (v, at) => v.getUint8(at) },
  BOOL: { size: 1, read: (v, at) => (v.getUint8(at) ? 1 : 0) },
};

const utf8 = new TextEncoder();

function compareUtf8(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function checkShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** Element count, or undefined when it is not a safe integer. */
function elementCount(shape: readonly number[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

/** A JSON object written in exactly the given key order (JSON.stringify would hoist integer-like keys). */
function jsonObject(entries: [string, string][]): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

export function encodeSafetensors(tensors: Record<string, NDArray>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors).sort(compareUtf8);
  const header: [string, string][] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') throw new TypeError(`safetensors metadata '${k}' must be a string`);
    }
    header.push([METADATA_KEY, jsonObject(keys.map((k) => [k, JSON.stringify(metadata[k])]))]);
  }
  let offset = 0;
  for (const name of names) {
    if (name === '' || name === METADATA_KEY) throw new RangeError(`invalid safetensors tensor name '${name}'`);
    const { shape, data } = tensors[name];
    if (!checkShape(shape))
      throw new RangeError(`tensor '${name}': shape ${JSON.stringify(shape)} is not a list of sizes`);
    if (!(data instanceof Float32Array)) throw new TypeError(`tensor '${name}': data must be a Float32Array`);
    if (elementCount(shape) !== data.length) {
      throw new RangeError(`tensor '${name}': shape [${shape.join(', ')}] does not match ${data.length} elements`);
    }
    const end = offset + data.byteLength;
    header.push([name, JSON.stringify({ dtype: 'F32', shape, data_offsets: [offset, end] })]);
    offset = end;
  }

  const json = utf8.encode(jsonObject(header));
  const headerLength = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const name of names) {
    const { data } = tensors[name];
    if (LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    } else {
      for (let i = 0; i < data.length; i++) view.setFloat32(at + 4 * i, data[i], true);
    }
    at += data.byteLength;
  }
  return out;
}

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseEntry(name: string, value: unknown, fail: (reason: string) => never): Entry {
  if (!isPlainObject(value)) fail(`tensor '${name}': header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') fail(`tensor '${name}': missing dtype`);
  if (!Object.hasOwn(READERS, dtype)) {
    fail(`tensor '${name}': unsupported dtype '${dtype}' (supported: ${Object.keys(READERS).join(', ')})`);
  }
  const reader = READERS[dtype];
  if (!checkShape(shape)) fail(`tensor '${name}': shape ${JSON.stringify(shape)} is not a list of sizes`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    fail(`tensor '${name}': data_offsets ${JSON.stringify(offsets)} is not [begin, end] with begin <= end`);
  }
  const [begin, end] = offsets as [number, number];
  const count = elementCount(shape);
  if (count === undefined || count * reader.size !== end - begin) {
    fail(
      `tensor '${name}': shape [${shape.join(', ')}] of ${dtype} needs ${count === undefined ? 'too many' : count * reader.size} bytes ` +
        `but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype, shape: [...shape], begin, end };
}

function toFloat32(bytes: Uint8Array, entry: Entry): Float32Array {
  if (entry.dtype === 'F32' && LITTLE_ENDIAN_HOST) {
    // A Node Buffer's slice is a view, not a copy: copy through Uint8Array so each tensor owns its bytes.
    return new Float32Array(Uint8Array.prototype.slice.call(bytes, entry.begin, entry.end).buffer);
  }
  const reader = READERS[entry.dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset + entry.begin, entry.end - entry.begin);
  const out = new Float32Array((entry.end - entry.begin) / reader.size);
  for (let i = 0; i < out.length; i++) out[i] = reader.read(view, i * reader.size);
  return out;
}

/** Parses and fully validates `bytes`; every failure is a SafetensorsError naming `source`. */
export function decodeSafetensors(bytes: Uint8Array, source = '<safetensors bytes>'): Safetensors {
  const fail: (reason: string) => never = (reason) => {
    throw new SafetensorsError(source, reason);
  };
  if (bytes.byteLength < 8) fail(`truncated: ${bytes.byteLength} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) fail(`header length ${declared} exceeds ${MAX_HEADER_BYTES} bytes`);
  const headerLength = Number(declared);
  if (8 + headerLength > bytes.byteLength) {
    fail(`truncated: header declares ${headerLength} bytes but only ${bytes.byteLength - 8} follow`);
  }

  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isPlainObject(header)) fail('header is not a JSON object');
  const fields = header as Record<string, unknown>;

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
        fail(`${METADATA_KEY} is not an object of strings`);
      }
      metadata = Object.fromEntries(Object.entries(value as Record<string, string>));
      continue;
    }
    entries.push(parseEntry(name, value, fail));
  }

  // The spec requires the tensors to tile the data section exactly: no overlap, no hole.
  const data = bytes.subarray(8 + headerLength);
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous: Entry | undefined;
  for (const entry of entries) {
    if (entry.end > data.byteLength) {
      fail(
        `truncated: tensor '${entry.name}' data_offsets [${entry.begin}, ${entry.end}] run past ` +
          `the ${data.byteLength} data bytes present`,
      );
    }
    if (entry.begin < expected) {
      fail(
        `tensor '${entry.name}' [${entry.begin}, ${entry.end}] overlaps tensor '${previous?.name}' ending at ${expected}`,
      );
    }
    if (entry.begin > expected) fail(`unreferenced bytes [${expected}, ${entry.begin}) before tensor '${entry.name}'`);
    expected = entry.end;
    previous = entry;
  }
  if (expected !== data.byteLength) fail(`${data.byteLength - expected} trailing bytes after the last tensor`);

  const tensors = Object.fromEntries(
    entries.map((entry): [string, NDArray] => [entry.name, { shape: entry.shape, data: toFloat32(data, entry) }]),
  );
  return { tensors, metadata };
}
