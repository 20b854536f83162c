/**
 * A minimal streaming reader of tar archives (POSIX ustar, as GNU tar writes them), enough to
 * pull regular files out of a dataset archive without a dependency.
 *
 * An archive is a sequence of 512-byte headers, each followed by the member's data padded to
 * a multiple of 512, and ends with two zero blocks. Header fields used: name (0, 100 bytes),
 * size (124, 12 bytes octal), checksum (148, 8 bytes octal: the byte sum of the header with
 * this field read as spaces), type flag (156), ustar prefix (345, 155 bytes). GNU long names
 * (type 'L') and pax headers ('x', 'g') are honoured or skipped.
 * Reference: POSIX.1-2017, pax "ustar Interchange Format".
 */
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { DatasetFileError } from './errors.js';

export interface TarEntry {
  /** Path inside the archive. */
  name: string;
  /** '0' regular file, '5' directory, ... */
  type: string;
  data: Buffer;
}

const BLOCK = 512;
/** Members are held whole in memory: a header claiming more (up to 8 GiB in 11 octal digits) is refused before reading. */
const MAX_MEMBER_BYTES = 1 << 30;

/** Exact-length reads over a stream of chunks. */
class ChunkReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private done = false;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  /** Exactly `n` bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    while (this.length < n && !this.done) {
      const next = await this.source.next();
      if (next.done) this.done = true;
      else {
        this.buffered.push(next.value);
        this.length += next.value.length;
      }
    }
    const all = this.buffered.length === 1 ? this.buffered[0] : Buffer.concat(this.buffered);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.buffered = rest.length ? [rest] : [];
    this.length = rest.length;
    return out;
  }
}

function field(header: Buffer, offset: number, length: number): string {
  const raw = header.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? length : end).toString('utf8');
}

function octal(header: Buffer, offset: number, length: number, what: string, source: string): number {
  const text = field(header, offset, length).trim();
  if (!/^[0-7]+$/.test(text))
    throw new DatasetFileError(source, `${source}: corrupt tar header: ${what} '${text}' is not octal`);
  return parseInt(text, 8);
}

/** The members of a tar stream, in order, each with its whole data. */
export async function* tarEntries(chunks: AsyncIterable<Buffer>, source: string): AsyncGenerator<TarEntry> {
  const reader = new ChunkReader(chunks[Symbol.asyncIterator]());
  let longName: string | null = null;
  for (;;) {
    const header = await reader.read(BLOCK);
    if (header.length === 0) return;
    if (header.length < BLOCK) throw new DatasetFileError(source, `${source}: truncated tar archive (partial header)`);
    if (header.every((b) => b === 0)) return;
    const expected = octal(header, 148, 8, 'checksum', source);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
    if (sum !== expected)
      throw new DatasetFileError(source, `${source}: corrupt tar header (checksum ${sum}, recorded ${expected})`);
    const size = octal(header, 124, 12, 'size', source);
    if (size > MAX_MEMBER_BYTES) {
      throw new DatasetFileError(
        source,
        `${source}: tar member of ${size} bytes exceeds the ${MAX_MEMBER_BYTES}-byte limit`,
      );
    }
    const type = String.fromCharCode(header[156] || 0x30);
    const data = await reader.read(size);
    if (data.length < size)
      throw new DatasetFileError(
        source,
        `${source}: truncated tar archive (member of ${size} bytes cut at ${data.length})`,
      );
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if ((await reader.read(padding)).length < padding)
      throw new DatasetFileError(source, `${source}: truncated tar archive (padding)`);
    if (type === 'L') {
      longName = data.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    if (type === 'x' || type === 'g') continue;
    const prefix = field(header, 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
    longName = null;
    yield { name, type: type === '\0' ? '0' : type, data };
  }
}

/** The members of a gzipped tar file. */
export async function* tarGzEntries(path: string): AsyncGenerator<TarEntry> {
  const gunzip = createGunzip();
  // pipe() does not forward a read error: without this a missing file would hang the reader.
  const file = createReadStream(path).on('error', (error) => gunzip.destroy(error));
  file.pipe(gunzip);
  try {
    yield* tarEntries(gunzip, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // zlib's codes (Z_DATA_ERROR, Z_BUF_ERROR, ...) mean the bytes are not gzip: the file's fault.
    if (typeof code === 'string' && code.startsWith('Z_')) {
      throw new DatasetFileError(path, `${path}: not a valid gzip stream (${(error as Error).message})`, {
        cause: error,
      });
    }
    throw error;
  } finally {
    file.destroy();
    gunzip.destroy();
  }
}

/** A ustar archive of regular files, for tests and tools that need to build one. */
export function writeTar(files: Array<{ name: string; data: Uint8Array }>): Buffer {
  const blocks: Buffer[] = [];
  for (const { name, data } of files) {
    if (Buffer.byteLength(name) > 100) throw new RangeError(`tar member name longer than 100 bytes: ${name}`);
    const header = Buffer.alloc(BLOCK);
    header.write(name, 0, 100, 'utf8');
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    header.write('00000000000\0', 136);
    header.write('        ', 148);
    header.write('0', 156);
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(header, Buffer.from(data), Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK));
  }
  blocks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(blocks);
}
