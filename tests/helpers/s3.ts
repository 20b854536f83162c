/**
 * Test fixtures for S3: a real s3rver HTTP endpoint on a free local port (in a child
 * process, see s3rver-process.ts), and a proxy
 * that injects the failures real endpoints produce (503s, dropped connections, bodies
 * cut off mid-stream) so retry behaviour can be shown rather than assumed.
 */
import { Buffer } from 'node:buffer';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

/** s3rver accepts only these (its documented defaults). */
export const S3_TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3Fixture {
  /** Where s3rver keeps the buckets' objects on disk. */
  directory: string;
  endpoint: string;
  bucket: string;
  credentials: typeof S3_TEST_CREDENTIALS;
  /** Variables that point a child process's store at this server. */
  env: Record<string, string>;
  /** A raw client, for acting behind a store's back; destroyed by stop(). */
  client: S3Client;
  stop(): Promise<void>;
}

export function rawClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    credentials: S3_TEST_CREDENTIALS,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

const SERVER_ENTRY = fileURLToPath(new URL('./s3rver-process.js', import.meta.url));

/** Starts the s3rver child process and resolves with its port. */
async function spawnS3rver(
  directory: string,
  keyPairs: S3Credentials[] = [],
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', SERVER_ENTRY, directory, JSON.stringify(keyPairs)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error('s3rver did not start within 20 s')), 20_000);
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`s3rver exited early (${signal ?? code})`)));
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const line = output.split('\n', 1)[0];
        if (output.includes('\n')) {
          clearTimeout(timer);
          const parsed: unknown = JSON.parse(line);
          const port = typeof parsed === 'object' && parsed !== null && 'port' in parsed ? parsed.port : undefined;
          if (typeof port === 'number') resolve(port);
          else reject(new Error(`unexpected s3rver output: ${line}`));
        }
      });
    });
    child.removeAllListeners('exit');
    return { child, port };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

/**
 * Starts s3rver on 127.0.0.1 (random free port, data in a temp dir) with one empty bucket
 * created through the S3 API.
 */
export async function startS3(options: { bucket?: string; keyPairs?: S3Credentials[] } = {}): Promise<S3Fixture> {
  const directory = await mkdtemp(path.join(tmpdir(), 'diffem-s3rver-'));
  let child: ChildProcess | undefined;
  let client: S3Client | undefined;
  const stop = async (): Promise<void> => {
    client?.destroy();
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    await rm(directory, { recursive: true, force: true });
  };
  try {
    const started = await spawnS3rver(directory, options.keyPairs);
    child = started.child;
    const endpoint = `http://127.0.0.1:${started.port}`;
    const bucket = options.bucket ?? 'diffem-test';
    client = rawClient(endpoint);
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return {
      directory,
      endpoint,
      bucket,
      credentials: S3_TEST_CREDENTIALS,
      env: {
        DIFFEM_S3_ENDPOINT: endpoint,
        AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
        AWS_REGION: 'us-east-1',
      },
      client,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface FlakyProxyOptions {
  /** Every Nth request (1-based count) is answered 503 ServiceUnavailable without reaching the target. */
  failEvery?: number;
  /** Request numbers whose connection is destroyed without any answer. */
  dropRequests?: number[];
  /** The first N successful GETs with a body send half of it, then drop the connection. */
  truncateGets?: number;
}

export interface InjectedFailures {
  unavailable: number;
  dropped: number;
  truncated: number;
}

export interface FlakyProxy {
  endpoint: string;
  /** Requests seen so far. */
  requests(): number;
  /** Failures injected so far, all kinds together. */
  failures(): number;
  injected(): InjectedFailures;
  stop(): Promise<void>;
}

const UNAVAILABLE_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>' +
  '<Message>injected by the flaky proxy</Message></Error>';

/** Hop-by-hop headers the proxy must not forward; `expect` was already answered here. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'expect', 'proxy-connection', 'upgrade']);

/** An HTTP proxy in front of `target` that fails requests on a fixed, reproducible schedule. */
export async function startFlakyProxy(target: string, options: FlakyProxyOptions = {}): Promise<FlakyProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const drop = new Set(options.dropRequests ?? []);
  const counts: InjectedFailures = { unavailable: 0, dropped: 0, truncated: 0 };
  let requests = 0;

  const server = http.createServer((req, res) => {
    const n = ++requests;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (drop.has(n)) {
        counts.dropped++;
        req.socket.destroy();
        return;
      }
      if (options.failEvery !== undefined && n % options.failEvery === 0) {
        counts.unavailable++;
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(UNAVAILABLE_XML) });
        res.end(UNAVAILABLE_XML);
        return;
      }
      const headers: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (!HOP_HEADERS.has(name) && value !== undefined) headers[name] = value;
      }
      const forward = http.request(
        { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers, agent },
        (answer) => {
          const status = answer.statusCode ?? 502;
          const length = Number(answer.headers['content-length'] ?? 0);
          const truncate =
            req.method === 'GET' && status === 200 && length >= 2 && counts.truncated < (options.truncateGets ?? 0);
          if (!truncate) {
            res.writeHead(status, answer.headers);
            answer.pipe(res);
            return;
          }
          counts.truncated++;
          const body: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => body.push(chunk));
          answer.on('end', () => {
            res.writeHead(status, answer.headers);
            res.write(Buffer.concat(body).subarray(0, Math.floor(length / 2)), () => res.socket?.destroy());
          });
        },
      );
      forward.on('error', () => res.destroy());
      forward.end(Buffer.concat(chunks));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests: () => requests,
    failures: () => counts.unavailable + counts.dropped + counts.truncated,
    injected: () => ({ ...counts }),
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}
