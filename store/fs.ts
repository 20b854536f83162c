/**
 * Artifact store on a local directory: key 'a/b/c' is the file <root>/a/b/c.
 *
 * `put` is atomic and durable across `kill -9` and power loss: the bytes go to a uniquely
 * named temporary file in the target's directory, which is fsynced and then renamed over
 * the target (rename within one directory is atomic on POSIX), and the directory is
 * fsynced so the rename itself persists. A crash leaves either the old file or the new
 * one, plus at worst a stray temporary file. Temporary names contain '~', which no valid
 * key may contain, so `list` can never mistake one for an artifact.
 *
 * `head` hashes the file on each call rather than caching digests in sidecar files,
 * which could go stale relative to the data they describe.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { appendFile, lstat, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import {
  ArtifactNotFoundError,
  type ArtifactRef,
  type ArtifactStore,
  assertMatchesRef,
  refOf,
  validateKey,
  validatePrefix,
} from './store.js';

const TEMP_MARK = '.~tmp-';
const HASH_CHUNK = 1 << 20;

function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** ENOTDIR and EISDIR mean a file/directory shape mismatch: there is no artifact at that key. */
function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

function isValidKey(key: string): boolean {
  try {
    validateKey(key);
    return true;
  } catch {
    return false;
  }
}

/** Some filesystems refuse fsync on directories; the rename is still atomic there. */
async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EINVAL' && code !== 'EPERM' && code !== 'EISDIR' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * Fault injection for the crash-recovery tests: with DIFFEM_CRASH_WRITING=SUFFIX set, the
 * first write of a key ending in SUFFIX stops half-way and the process SIGKILLs itself,
 * so a test can crash a real campaign at the worst moment of a write, deterministically.
 */
function crashesWhileWriting(key: string, put: number): boolean {
  const suffix = process.env.DIFFEM_CRASH_WRITING;
  return (Boolean(suffix) && key.endsWith(suffix as string)) || put === Number(process.env.DIFFEM_CRASH_AT_PUT);
}

/**
 * Fault injection for full-disk tests: with DIFFEM_FAULT_ENOSPC_AFTER=N set, every put after
 * the first N of this process fails as a full disk does, after the temporary file was created.
 * DIFFEM_CRASH_AT_PUT=N crashes the process (as DIFFEM_CRASH_WRITING) half-way through its
 * Nth put, so the soak can kill a campaign inside any write.
 */
function diskFull(put: number): boolean {
  const after = process.env.DIFFEM_FAULT_ENOSPC_AFTER;
  return after !== undefined && after !== '' && put > Number(after);
}

function enospc(file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), {
    code: 'ENOSPC',
    errno: -28,
    syscall: 'write',
  });
}

/** Puts started by this process, counted for the fault hooks. */
let putsStarted = 0;

/**
 * A key whose path inside the store passes through a symbolic link. The store's directory
 * is trusted; anything under it is data, and a link planted there (by an archive, another
 * user, a mistake) must not let a key read or write outside the store.
 */
export class StoreSymlinkError extends Error {
  readonly type = 'StoreSymlink' as const;
  override readonly name = 'StoreSymlinkError';
  readonly nonRetryable = true;
  constructor(
    readonly key: string,
    readonly store: string,
    readonly link: string,
  ) {
    super(`refusing '${key}' in ${store}: ${link} is a symbolic link, and the store never follows links`);
  }
}

export class FsArtifactStore implements ArtifactStore {
  readonly root: string;
  readonly uri: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.uri = pathToFileURL(this.root).href;
  }

  /** Absolute path of `key` (validated, so it cannot leave the root). */
  pathOf(key: string): string {
    return path.join(this.root, ...validateKey(key).split('/'));
  }

  /**
   * `pathOf(key)` after checking that no directory or file on the way from the root is a
   * symbolic link. A link swapped in between this check and the I/O is not caught; the
   * check stops links that are already there, which is how a store gets them.
   */
  private async confinedPath(key: string): Promise<string> {
    const target = this.pathOf(key);
    let at = this.root;
    for (const segment of key.split('/')) {
      at = path.join(at, segment);
      let isLink: boolean;
      try {
        isLink = (await lstat(at)).isSymbolicLink();
      } catch (err) {
        if (isMissing(err)) return target;
        throw err;
      }
      if (isLink) throw new StoreSymlinkError(key, this.uri, path.relative(this.root, at));
    }
    return target;
  }

  private failure(op: string, key: string, err: unknown): Error {
    const reason = err instanceof Error ? err.message : String(err);
    return new Error(`${op} '${key}' in ${this.uri} failed: ${reason}`, { cause: err });
  }

  async put(key: string, body: Uint8Array): Promise<ArtifactRef> {
    const target = await this.confinedPath(key);
    const dir = path.dirname(target);
    const ref = refOf(key, body);
    // Bounded length so a long final segment still leaves room under NAME_MAX.
    const temp = path.join(dir, `${TEMP_MARK}${randomBytes(8).toString('hex')}-${path.basename(target).slice(0, 100)}`);
    let created: string | undefined;
    let tempWritten = false;
    try {
      created = await mkdir(dir, { recursive: true });
      const handle = await open(temp, 'wx', 0o644);
      tempWritten = true;
      const put = ++putsStarted;
      // The soak reads which write a kill interrupted from this log (DIFFEM_PUT_LOG=FILE).
      if (process.env.DIFFEM_PUT_LOG) await appendFile(process.env.DIFFEM_PUT_LOG, `${put} ${key}\n`);
      try {
        if (diskFull(put)) throw enospc(temp);
        if (crashesWhileWriting(key, put)) {
          await handle.writeFile(body.subarray(0, body.length >> 1));
          await handle.sync();
          process.kill(process.pid, 'SIGKILL');
        }
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
      tempWritten = false;
      // Persist the new entry, and the entries of any directories mkdir just created.
      const stopAt = created === undefined ? dir : path.dirname(created);
      for (let d = dir; ; d = path.dirname(d)) {
        await fsyncDir(d);
        if (d === stopAt || d === path.dirname(d)) break;
      }
      return ref;
    } catch (err) {
      if (tempWritten) await unlink(temp).catch(() => undefined);
      throw this.failure('put', key, err);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    const file = await this.confinedPath(key);
    try {
      const buf = await readFile(file);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (err) {
      if (isMissing(err)) throw new ArtifactNotFoundError(key, this.uri, { cause: err });
      throw this.failure('get', key, err);
    }
  }

  async getVerified(ref: ArtifactRef): Promise<Uint8Array> {
    return assertMatchesRef(ref, await this.get(ref.key), this.uri);
  }

  async head(key: string): Promise<ArtifactRef | null> {
    const file = await this.confinedPath(key);
    let handle;
    try {
      handle = await open(file, 'r');
      // Reading through one descriptor hashes one inode even if a put replaces the file meanwhile.
      const info = await handle.stat();
      if (!info.isFile()) return null;
      const hash = createHash('sha256');
      const chunk = new Uint8Array(Math.min(HASH_CHUNK, Math.max(1, info.size)));
      let bytes = 0;
      for (;;) {
        const { bytesRead } = await handle.read(chunk, 0, chunk.byteLength, null);
        if (bytesRead === 0) break;
        hash.update(chunk.subarray(0, bytesRead));
        bytes += bytesRead;
      }
      return { key, sha256: hash.digest('hex'), bytes };
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.failure('head', key, err);
    } finally {
      await handle?.close();
    }
  }

  async exists(key: string): Promise<boolean> {
    const file = await this.confinedPath(key);
    try {
      return (await stat(file)).isFile();
    } catch (err) {
      if (isMissing(err)) return false;
      throw this.failure('exists', key, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    // Start at the deepest directory the prefix fully names; the rest is a string filter.
    const cut = prefix.lastIndexOf('/');
    const base = cut < 0 ? '' : prefix.slice(0, cut);
    const keys: string[] = [];
    await this.walk(
      base,
      (key) => {
        if (key.startsWith(prefix) && isValidKey(key)) keys.push(key);
      },
      (dirKey) => `${dirKey}/`.startsWith(prefix) || prefix.startsWith(`${dirKey}/`),
    );
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    const file = await this.confinedPath(key);
    try {
      await unlink(file);
    } catch (err) {
      // A directory at the key (EPERM on some systems) holds no artifact either.
      if (isMissing(err) || errnoCode(err) === 'EPERM') return;
      throw this.failure('delete', key, err);
    }
  }

  /**
   * Removes temporary files left by writers that were killed mid-put. Only files older
   * than `olderThanMs` are touched, so concurrent writers in other processes are safe.
   * Returns how many were removed.
   */
  async sweepTemporaries(olderThanMs = 60 * 60 * 1000): Promise<number> {
    const stale: string[] = [];
    const now = Date.now();
    await this.walk(
      '',
      () => undefined,
      () => true,
      async (file) => {
        try {
          if (now - (await stat(file)).mtimeMs >= olderThanMs) stale.push(file);
        } catch (err) {
          if (!isMissing(err)) throw err;
        }
      },
    );
    let removed = 0;
    for (const file of stale) {
      try {
        await unlink(file);
        removed++;
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
    return removed;
  }

  /**
   * Depth-first walk from directory key `dirKey` ('' = root). Symlinks are skipped so
   * nothing outside the root is ever reached; directories vanishing mid-walk are fine.
   */
  private async walk(
    dirKey: string,
    onFile: (key: string) => void,
    descend: (dirKey: string) => boolean,
    onTemp?: (file: string) => Promise<void>,
  ): Promise<void> {
    const dir = dirKey === '' ? this.root : path.join(this.root, ...dirKey.split('/'));
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw this.failure('list', dirKey, err);
    }
    for (const entry of entries) {
      const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
      if (entry.isDirectory()) {
        if (descend(key)) await this.walk(key, onFile, descend, onTemp);
      } else if (entry.isFile()) {
        if (entry.name.startsWith(TEMP_MARK)) await onTemp?.(path.join(dir, entry.name));
        else onFile(key);
      }
    }
  }
}
