/**
 * Artifact store on S3 or any S3-compatible service: key 'a/b' of store
 * 's3://bucket/prefix' is the object 'prefix/a/b' in 'bucket'.
 *
 * PutObject is atomic by S3's own semantics (an object is replaced whole or not at all),
 * so no temporary objects are needed. The sha256 of each object is stored as user
 * metadata (`x-amz-meta-sha256`) so `head` can answer audits without downloading.
 *
 * Flaky endpoints: requests go through the SDK's standard retry strategy, which retries
 * 5xx answers, throttling and connection errors (ECONNRESET, EPIPE, ...) with jittered
 * exponential backoff. The SDK cannot retry a GetObject whose body stream breaks after
 * the headers arrived, so `get` retries that case itself and also rejects short bodies.
 *
 * Configuration follows the AWS conventions: credentials from the default provider chain,
 * region from AWS_REGION / AWS_DEFAULT_REGION (else 'us-east-1'), and an endpoint override
 * (MinIO, s3rver, ...) from the `endpoint` option or DIFFEM_S3_ENDPOINT,
 * AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, which also switches to path-style addressing.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';

import {
  ArtifactNotFoundError,
  type ArtifactRef,
  type ArtifactStore,
  assertMatchesRef,
  refOf,
  sha256Hex,
  validateKey,
  validatePrefix,
} from './store.js';
import { redactSecrets, refuseCredentialsInUri } from './secrets.js';

export interface S3StoreOptions {
  /** Endpoint URL of an S3-compatible service; overrides the environment. */
  endpoint?: string;
  region?: string;
  /** Defaults to the SDK's provider chain (env, shared config, SSO, IMDS, ...). */
  credentials?: S3ClientConfig['credentials'];
  /** Total attempts per request, first try included (SDK standard retry). Default 5. */
  maxAttempts?: number;
  /** Defaults to true when an endpoint is overridden, since most such services need it. */
  forcePathStyle?: boolean;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000). */
  listPageSize?: number;
  /** Socket inactivity limit per request. Default 120 s, so a hung endpoint fails and is retried. */
  requestTimeoutMs?: number;
  /** TCP connect limit. Default 10 s. */
  connectionTimeoutMs?: number;
  /** Environment to read configuration from; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface S3Location {
  bucket: string;
  /** '' or ends with '/'. */
  prefix: string;
}

const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Parses 's3://bucket' or 's3://bucket/some/prefix[/]'; throws an error naming the URI. */
export function parseS3Uri(uri: string): S3Location {
  refuseCredentialsInUri(uri);
  const match = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?$/.exec(uri);
  if (!match) throw new Error(`invalid S3 store URI '${uri}': expected s3://bucket[/prefix]`);
  const bucket = match[1];
  if (!BUCKET.test(bucket)) throw new Error(`invalid S3 store URI '${uri}': bad bucket name '${bucket}'`);
  const prefix = (match[2] ?? '').replace(/\/+$/, '');
  if (prefix !== '') {
    try {
      validateKey(prefix);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(`invalid S3 store URI '${uri}': bad prefix (${reason})`, { cause: err });
    }
  }
  return { bucket, prefix: prefix === '' ? '' : `${prefix}/` };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** The S3Client configuration the store uses, exposed so it can be checked without I/O. */
export function s3ClientConfig(options: S3StoreOptions = {}): S3ClientConfig {
  const env = options.env ?? process.env;
  const endpoint =
    nonEmpty(options.endpoint) ??
    nonEmpty(env.DIFFEM_S3_ENDPOINT) ??
    nonEmpty(env.AWS_ENDPOINT_URL_S3) ??
    nonEmpty(env.AWS_ENDPOINT_URL);
  if (endpoint !== undefined && !URL.canParse(endpoint)) {
    throw new Error(`invalid S3 endpoint '${endpoint}': not a URL`);
  }
  const config: S3ClientConfig = {
    region: nonEmpty(options.region) ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1',
    maxAttempts: options.maxAttempts ?? 5,
    retryMode: 'standard',
    requestHandler: {
      requestTimeout: options.requestTimeoutMs ?? 120_000,
      connectionTimeout: options.connectionTimeoutMs ?? 10_000,
    },
  };
  if (options.credentials !== undefined) config.credentials = options.credentials;
  if (endpoint !== undefined) {
    config.endpoint = endpoint;
    config.forcePathStyle = options.forcePathStyle ?? true;
    // Many S3-compatible services reject the SDK's newer default CRC checksum headers;
    // end-to-end integrity comes from the stored sha256 and getVerified anyway.
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  } else if (options.forcePathStyle !== undefined) {
    config.forcePathStyle = options.forcePathStyle;
  }
  return config;
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && '$metadata' in err) {
    const meta = (err as { $metadata: unknown }).$metadata;
    if (typeof meta === 'object' && meta !== null && 'httpStatusCode' in meta) {
      const status = (meta as { httpStatusCode: unknown }).httpStatusCode;
      return typeof status === 'number' ? status : undefined;
    }
  }
  return undefined;
}

/** A missing bucket also answers 404, but that is a misconfiguration, not a missing artifact. */
function isMissingObject(err: unknown): boolean {
  const name = errorName(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(err) === 404;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class S3ArtifactStore implements ArtifactStore {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly maxAttempts: number;
  private readonly listPageSize: number | undefined;

  constructor(uri: string, options: S3StoreOptions = {}) {
    const { bucket, prefix } = parseS3Uri(uri);
    this.bucket = bucket;
    this.prefix = prefix;
    this.uri = `s3://${bucket}${prefix === '' ? '' : `/${prefix.slice(0, -1)}`}`;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.listPageSize = options.listPageSize;
    this.client = new S3Client(s3ClientConfig(options));
  }

  /** Releases the client's pooled connections. */
  close(): void {
    this.client.destroy();
  }

  private objectKey(key: string): string {
    return this.prefix + validateKey(key);
  }

  private failure(op: string, key: string, err: unknown): Error {
    const reason = redactSecrets(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    const status = httpStatus(err);
    return new Error(`${op} '${key}' in ${this.uri} failed${status ? ` (HTTP ${status})` : ''}: ${reason}`, {
      cause: err,
    });
  }

  async put(key: string, body: Uint8Array): Promise<ArtifactRef> {
    const Key = this.objectKey(key);
    const ref = refOf(key, body);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: body,
          ContentLength: body.byteLength,
          ContentType: 'application/octet-stream',
          Metadata: { sha256: ref.sha256 },
        }),
      );
    } catch (err) {
      throw this.failure('put', key, err);
    }
    return ref;
  }

  async get(key: string): Promise<Uint8Array> {
    const Key = this.objectKey(key);
    for (let attempt = 1; ; attempt++) {
      let response;
      try {
        response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      } catch (err) {
        if (isMissingObject(err)) throw new ArtifactNotFoundError(key, this.uri, { cause: err });
        throw this.failure('get', key, err);
      }
      try {
        if (!response.Body) throw new Error('response has no body');
        const bytes = await response.Body.transformToByteArray();
        const expected = response.ContentLength;
        if (expected !== undefined && bytes.byteLength !== expected) {
          throw new Error(`body cut short: ${bytes.byteLength} of ${expected} bytes`);
        }
        return bytes;
      } catch (err) {
        if (attempt >= this.maxAttempts) throw this.failure('get', key, err);
        await sleep(Math.random() * 100 * 2 ** attempt);
      }
    }
  }

  async getVerified(ref: ArtifactRef): Promise<Uint8Array> {
    return assertMatchesRef(ref, await this.get(ref.key), this.uri);
  }

  async head(key: string): Promise<ArtifactRef | null> {
    const Key = this.objectKey(key);
    let response;
    try {
      response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (isMissingObject(err)) return null;
      throw this.failure('head', key, err);
    }
    // The SDK lower-cases user metadata names.
    const sha256 = response.Metadata?.sha256;
    if (sha256 !== undefined && SHA256_HEX.test(sha256) && response.ContentLength !== undefined) {
      return { key, sha256, bytes: response.ContentLength };
    }
    // Written by another tool: fall back to hashing the content.
    try {
      const bytes = await this.get(key);
      return { key, sha256: sha256Hex(bytes), bytes: bytes.byteLength };
    } catch (err) {
      if (err instanceof ArtifactNotFoundError) return null;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return true;
    } catch (err) {
      if (isMissingObject(err)) return false;
      throw this.failure('exists', key, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const keys: string[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
            MaxKeys: this.listPageSize,
          }),
        );
      } catch (err) {
        throw this.failure('list', prefix, err);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.prefix)) continue;
        const key = object.Key.slice(this.prefix.length);
        // Objects other tools wrote under names no key can have are not artifacts.
        try {
          keys.push(validateKey(key));
        } catch {
          continue;
        }
      }
      if (page.IsTruncated && !page.NextContinuationToken) {
        throw this.failure('list', prefix, new Error('truncated listing without a continuation token'));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (isMissingObject(err)) return;
      throw this.failure('delete', key, err);
    }
  }
}
