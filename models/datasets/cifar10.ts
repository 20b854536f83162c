/**
 * CIFAR-10 (Krizhevsky 2009), 32x32 colour images in 10 classes, as [n, 32, 32, 3] in [-2, 2].
 *
 * The "binary version" is a tar.gz of `cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`;
 * each .bin holds records of 3073 bytes: the label, then 1024 red, 1024 green and 1024 blue
 * bytes, each plane row-major 32x32 (https://www.cs.toronto.edu/~kriz/cifar.html). The
 * archive's MD5 below is the one that page publishes for the binary version (170,052,171 bytes).
 * The official split is 50,000 train and 10,000 test images; the test batch is never training
 * data (a defect of the reference code, docs/method.md).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

import { ndarray } from '../ndarray.js';
import { DATA_MAX, DATA_MIN, type ImageDataset } from './dataset.js';
import { tarGzEntries } from './tar.js';
import { DatasetFileError } from './errors.js';

export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
export const CIFAR10_ARCHIVE = 'cifar-10-binary.tar.gz';
export const CIFAR10_DIR = 'cifar-10-batches-bin';
export const CIFAR10_TRAIN_FILES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
];
export const CIFAR10_TEST_FILES = ['test_batch.bin'];
export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

const SIDE = 32;
const PLANE = SIDE * SIDE;
export const CIFAR10_RECORD_BYTES = 1 + 3 * PLANE;

/** Decodes CIFAR-10 binary records; `source` names the file in errors. */
export function decodeCifar10(bytes: Uint8Array, source: string): ImageDataset {
  if (bytes.length === 0 || bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    throw new DatasetFileError(
      source,
      `${source}: ${bytes.length} bytes is not a whole number of CIFAR-10 records of ${CIFAR10_RECORD_BYTES} bytes ` +
        '(truncated, or not a CIFAR-10 binary batch)',
    );
  }
  const n = bytes.length / CIFAR10_RECORD_BYTES;
  const images = ndarray([n, SIDE, SIDE, 3]);
  const labels = new Int32Array(n);
  const scale = (DATA_MAX - DATA_MIN) / 255;
  for (let i = 0; i < n; i++) {
    const record = i * CIFAR10_RECORD_BYTES;
    labels[i] = bytes[record];
    if (labels[i] >= CIFAR10_CLASSES.length)
      throw new DatasetFileError(source, `${source}: record ${i} has label ${labels[i]}, not a class 0..9`);
    // Planes (CHW) to interleaved channels (HWC).
    for (let p = 0; p < PLANE; p++) {
      for (let c = 0; c < 3; c++)
        images.data[(i * PLANE + p) * 3 + c] = DATA_MIN + scale * bytes[record + 1 + c * PLANE + p];
    }
  }
  return { images, labels };
}

/** Encodes images in [-2, 2] and labels as CIFAR-10 binary records (the inverse of decoding). */
export function encodeCifar10(dataset: ImageDataset): Uint8Array {
  const [n, h, w, c] = dataset.images.shape;
  if (h !== SIDE || w !== SIDE || c !== 3)
    throw new RangeError(`CIFAR-10 records hold [n, 32, 32, 3], got [${dataset.images.shape}]`);
  const out = new Uint8Array(n * CIFAR10_RECORD_BYTES);
  const scale = 255 / (DATA_MAX - DATA_MIN);
  for (let i = 0; i < n; i++) {
    const record = i * CIFAR10_RECORD_BYTES;
    out[record] = dataset.labels?.[i] ?? 0;
    for (let p = 0; p < PLANE; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = Math.round((dataset.images.data[(i * PLANE + p) * 3 + ch] - DATA_MIN) * scale);
        out[record + 1 + ch * PLANE + p] = Math.min(255, Math.max(0, v));
      }
    }
  }
  return out;
}

export async function loadCifar10Batch(path: string): Promise<ImageDataset> {
  return decodeCifar10(await readFile(path), path);
}

export interface EnsureCifar10Options {
  url?: string;
  /** Expected MD5 of the archive (hex). */
  md5?: string;
  fetch?: (url: string) => Promise<Response>;
  /** Reports download progress in bytes. */
  onProgress?: (received: number, total: number | null) => void;
}

export class ChecksumMismatchError extends Error {
  readonly type = 'ChecksumMismatch';
}

async function md5File(path: string): Promise<string> {
  const hash = createHash('md5');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * Makes sure `dir/cifar-10-batches-bin/` holds the six .bin batches and returns that folder.
 * Missing batches come from `dir/cifar-10-binary.tar.gz`, downloaded from `url` when absent;
 * an archive whose MD5 differs from `md5` is refused (and a fresh download deleted).
 */
export async function ensureCifar10(dir: string, options: EnsureCifar10Options = {}): Promise<string> {
  const url = options.url ?? CIFAR10_URL;
  const md5 = (options.md5 ?? CIFAR10_MD5).toLowerCase();
  const out = join(dir, CIFAR10_DIR);
  const wanted = [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES];
  if (wanted.every((f) => existsSync(join(out, f)))) return out;

  await mkdir(out, { recursive: true });
  const archive = join(dir, CIFAR10_ARCHIVE);
  if (existsSync(archive)) {
    const got = await md5File(archive);
    if (got !== md5) {
      throw new ChecksumMismatchError(
        `${archive}: MD5 ${got} does not match the CIFAR-10 binary archive's ${md5}; delete the file to download it again`,
      );
    }
  } else {
    await download(url, archive, md5, options);
  }

  const found = new Set<string>();
  for await (const entry of tarGzEntries(archive)) {
    const name = basename(entry.name);
    // Only the expected members, written under their base name: nothing in the archive can
    // choose where a file lands.
    if (entry.type !== '0' || !wanted.includes(name)) continue;
    if (entry.data.length % CIFAR10_RECORD_BYTES !== 0) {
      throw new DatasetFileError(
        archive,
        `${archive}: member ${entry.name} has ${entry.data.length} bytes, not whole CIFAR-10 records`,
      );
    }
    const target = join(out, name);
    await writeFile(`${target}.part`, entry.data);
    await rename(`${target}.part`, target);
    found.add(name);
  }
  const missing = wanted.filter((f) => !found.has(f));
  if (missing.length) throw new DatasetFileError(archive, `${archive}: the archive lacks ${missing.join(', ')}`);
  return out;
}

async function download(url: string, target: string, md5: string, options: EnsureCifar10Options): Promise<void> {
  const fetchFn = options.fetch ?? ((u: string) => fetch(u));
  const response = await fetchFn(url);
  if (!response.ok || !response.body)
    throw new Error(`${url}: download failed with HTTP ${response.status} ${response.statusText}`);
  const total = Number(response.headers.get('content-length')) || null;
  const part = `${target}.part`;
  const hash = createHash('md5');
  let received = 0;
  const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  const hashing = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      hash.update(chunk);
      received += chunk.length;
      options.onProgress?.(received, total);
      yield chunk;
    }
  };
  try {
    await pipeline(body, hashing, createWriteStream(part));
  } catch (error) {
    await rm(part, { force: true });
    throw new Error(`${url}: download interrupted: ${error instanceof Error ? error.message : String(error)}`);
  }
  const got = hash.digest('hex');
  if (got !== md5) {
    await rm(part, { force: true });
    throw new ChecksumMismatchError(
      `${url}: the download's MD5 ${got} does not match the expected ${md5} (${received} bytes, deleted); ` +
        'the file is corrupt or not the CIFAR-10 binary archive',
    );
  }
  await rename(part, target);
}

/** The train (50,000) or test (10,000) images, downloading the archive into `dir` if needed. */
export async function loadCifar10(
  dir: string,
  split: 'train' | 'test',
  options: EnsureCifar10Options = {},
): Promise<ImageDataset> {
  const folder = await ensureCifar10(dir, options);
  const files = split === 'train' ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES;
  const parts: Uint8Array[] = [];
  for (const f of files) {
    const path = join(folder, f);
    const { size } = await stat(path);
    if (size % CIFAR10_RECORD_BYTES !== 0) throw new Error(`${path}: ${size} bytes is not whole CIFAR-10 records`);
    parts.push(await readFile(path));
  }
  const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return decodeCifar10(all, files.map((f) => join(folder, f)).join(', '));
}
