/**
 * One entry point from a store URI (as given on the command line or in a campaign
 * manifest) to an ArtifactStore: 's3://bucket[/prefix]' selects S3; 'file:///abs/dir'
 * or a plain path (relative paths resolve against `cwd`) selects the filesystem.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { FsArtifactStore } from './fs.js';
import { S3ArtifactStore, type S3StoreOptions } from './s3.js';
import type { ArtifactStore } from './store.js';
import { redactSecrets, refuseCredentialsInUri } from './secrets.js';

export interface OpenStoreOptions extends S3StoreOptions {
  /** Base for relative filesystem paths; defaults to process.cwd(). */
  cwd?: string;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

export function openStore(uri: string, options: OpenStoreOptions = {}): ArtifactStore {
  if (typeof uri !== 'string' || uri.trim() === '') {
    throw new Error(`invalid store URI ${JSON.stringify(uri)}: empty`);
  }
  refuseCredentialsInUri(uri);
  // A Windows drive letter (C:\runs) looks like a one-letter scheme but is a path.
  const drive = process.platform === 'win32' && /^[A-Za-z]:[\\/]/.test(uri);
  const scheme = drive ? undefined : SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === 's3') {
    return new S3ArtifactStore(uri, options);
  }
  if (scheme === 'file') {
    let dir: string;
    try {
      dir = fileURLToPath(uri);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(`invalid store URI '${redactSecrets(uri)}': ${reason}`, { cause: err });
    }
    return new FsArtifactStore(dir);
  }
  if (scheme !== undefined) {
    throw new Error(
      `unsupported store URI '${redactSecrets(uri)}': expected s3://bucket[/prefix], file:///dir or a directory path`,
    );
  }
  return new FsArtifactStore(path.resolve(options.cwd ?? process.cwd(), uri));
}

const opened = new Map<string, ArtifactStore>();

/** One store client per URI per process (S3 clients keep connection pools). */
export function storeFor(uri: string): ArtifactStore {
  let store = opened.get(uri);
  if (!store) {
    store = openStore(uri);
    opened.set(uri, store);
  }
  return store;
}
