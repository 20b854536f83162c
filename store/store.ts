/**
 * The artifact store contract shared by every backend (filesystem, S3).
 *
 * Every artifact of a campaign (datasets, weights, samples, metrics, step records) is
 * written through this interface and addressed by a key; each write returns the sha256
 * and size so a lap can later be audited and re-read with `getVerified`. Writers are
 * activities that may be retried and a local engine that may be killed at any instant,
 * so backends must make `put` atomic: a reader sees the old bytes or the new bytes,
 * never a mix.
 */
import { createHash } from 'node:crypto';
import type { ArtifactRef } from './ref.js';

export type { ArtifactRef };

export interface ArtifactStore {
  /** Where the store lives, e.g. 'file:///abs/dir' or 's3://bucket/prefix'. */
  readonly uri: string;
  put(key: string, body: Uint8Array): Promise<ArtifactRef>;
  /** Throws ArtifactNotFoundError when the key holds nothing. */
  get(key: string): Promise<Uint8Array>;
  /** Like `get`, but throws ArtifactCorruptError unless size and sha256 match `ref`. */
  getVerified(ref: ArtifactRef): Promise<Uint8Array>;
  /** Ref of the stored object, or null when absent. */
  head(key: string): Promise<ArtifactRef | null>;
  exists(key: string): Promise<boolean>;
  /** Keys starting with `prefix` (a plain string prefix, as in S3), sorted. */
  list(prefix: string): Promise<string[]>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
}

export class ArtifactNotFoundError extends Error {
  readonly type = 'ArtifactNotFound' as const;
  override readonly name = 'ArtifactNotFoundError';
  constructor(
    readonly key: string,
    readonly store: string,
    options?: ErrorOptions,
  ) {
    super(`artifact '${key}' not found in ${store}`, options);
  }
}

export class ArtifactCorruptError extends Error {
  readonly type = 'ArtifactCorrupt' as const;
  override readonly name = 'ArtifactCorruptError';
  constructor(
    readonly key: string,
    readonly store: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`artifact '${key}' in ${store} is corrupt: ${reason}`, options);
  }
}

export class InvalidKeyError extends Error {
  readonly type = 'InvalidKey' as const;
  override readonly name = 'InvalidKeyError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`invalid artifact key ${quoteKey(key)}: ${reason}`);
  }
}

export const MAX_KEY_LENGTH = 1024;
export const MAX_SEGMENT_LENGTH = 255;

const KEY_CHARS = /^[A-Za-z0-9._\-/=]*$/;

/** Keeps messages readable when the offending key is huge or holds control characters. */
function quoteKey(key: string): string {
  const shown = key.length > 120 ? `${key.slice(0, 120)}…` : key;
  return JSON.stringify(shown);
}

function checkSegments(key: string, segments: string[]): void {
  for (const segment of segments) {
    if (segment === '') throw new InvalidKeyError(key, 'empty path segment');
    // '.' would alias its parent on a filesystem but not on S3, so both are refused.
    if (segment === '..' || segment === '.') throw new InvalidKeyError(key, `'${segment}' path segment`);
    // Filesystems cap one name at 255 bytes (NAME_MAX); refuse it here, the same on S3.
    if (segment.length > MAX_SEGMENT_LENGTH) {
      throw new InvalidKeyError(key, `path segment longer than ${MAX_SEGMENT_LENGTH} characters`);
    }
  }
}

function checkChars(key: string): void {
  if (key.length > MAX_KEY_LENGTH) throw new InvalidKeyError(key, `longer than ${MAX_KEY_LENGTH} characters`);
  if (key.startsWith('/')) throw new InvalidKeyError(key, 'leading /');
  if (key.includes('\\')) throw new InvalidKeyError(key, 'backslash');
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) throw new InvalidKeyError(key, 'control character');
  }
  if (!KEY_CHARS.test(key)) {
    const bad = [...key].find((c) => !KEY_CHARS.test(c)) ?? '';
    throw new InvalidKeyError(key, `character ${JSON.stringify(bad)} outside [A-Za-z0-9._-/=]`);
  }
}

/**
 * Returns `key` unchanged if it is a safe, portable artifact key; throws InvalidKeyError
 * naming it otherwise. Keys map to paths on the filesystem store, so anything that could
 * escape the root or alias another key is refused before any I/O.
 */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError(String(key), 'empty key');
  checkChars(key);
  checkSegments(key, key.split('/'));
  return key;
}

/**
 * Returns `prefix` if it can start a valid key: '' lists everything, a trailing '/' is
 * allowed and the last segment may be partial ('runs/lap-0' matches 'runs/lap-01/x').
 */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw new InvalidKeyError(String(prefix), 'prefix is not a string');
  if (prefix === '') return prefix;
  checkChars(prefix);
  const segments = prefix.split('/');
  const last = segments.pop() ?? '';
  checkSegments(prefix, segments);
  if (last === '..') throw new InvalidKeyError(prefix, `'..' path segment`);
  return prefix;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function refOf(key: string, bytes: Uint8Array): ArtifactRef {
  return { key, sha256: sha256Hex(bytes), bytes: bytes.byteLength };
}

/** Throws ArtifactCorruptError unless `bytes` are exactly what `ref` describes. */
export function assertMatchesRef(ref: ArtifactRef, bytes: Uint8Array, store: string): Uint8Array {
  if (bytes.byteLength !== ref.bytes) {
    throw new ArtifactCorruptError(ref.key, store, `expected ${ref.bytes} bytes, found ${bytes.byteLength}`);
  }
  const actual = sha256Hex(bytes);
  if (actual !== ref.sha256) {
    throw new ArtifactCorruptError(ref.key, store, `expected sha256 ${ref.sha256}, found ${actual}`);
  }
  return bytes;
}

/** Pretty-printed with a trailing newline, so users can read step records directly. */
export async function putJson(store: ArtifactStore, key: string, value: unknown): Promise<ArtifactRef> {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new TypeError(`cannot store ${typeof value} as JSON at '${key}'`);
  return store.put(key, new TextEncoder().encode(`${text}\n`));
}

/** The caller vouches for `T`; bytes that are not UTF-8 JSON give ArtifactCorruptError. */
export async function getJson<T>(store: ArtifactStore, key: string): Promise<T> {
  const bytes = await store.get(key);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ArtifactCorruptError(key, store.uri, `not valid JSON (${reason})`, { cause: err });
  }
  return value as T;
}
