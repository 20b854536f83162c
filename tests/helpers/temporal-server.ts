/**
 * A real Temporal server for tests: `temporal server start-dev` of the CLI pinned in
 * tools/temporal (built by `tools/temporal/temporal.sh build` into .cache/temporal), headless, on
 * a free loopback port, with SQLite persistence in a file the test names, so that a test can
 * SIGKILL the server and start it again on the same database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { runCli, startCli, type CliResult } from './cli.js';

/**
 * The Temporal CLI that `npm run temporal:test` built and names in DIFFEM_TEMPORAL_CLI. Not
 * looked up in .cache by itself: `npm test` leaves these minutes-long tests to that script.
 */
export function temporalCliPath(): string | null {
  const given = process.env.DIFFEM_TEMPORAL_CLI;
  if (!given) return null;
  if (!existsSync(given)) throw new Error(`DIFFEM_TEMPORAL_CLI names ${given}, which does not exist`);
  return given;
}

/**
 * Why the server tests cannot run, or false when they can. With DIFFEM_REQUIRE_TEMPORAL=1
 * (`npm run temporal:test`, CI) a missing server is a failure, not a skip.
 */
export function serverSkipReason(): string | false {
  if (temporalCliPath()) return false;
  const reason = 'server tests run with `npm run temporal:test` (it builds and starts a Temporal dev server)';
  if (process.env.DIFFEM_REQUIRE_TEMPORAL === '1') throw new Error(reason);
  return reason;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Search attributes of workflows/temporal.ts (SEARCH_ATTRIBUTES), registered as the dev script does. */
const SEARCH_ATTRIBUTES = [
  'DiffemCampaignId=Keyword',
  'DiffemLap=Int',
  'DiffemDatasetDigest=Keyword',
  'DiffemHeadline=Double',
];

export interface DevServerOptions {
  dbFile: string;
  port?: number;
  /** `KEY=VALUE` dynamic config entries, e.g. limit.historyCount.suggestContinueAsNew=40. */
  dynamicConfig?: string[];
  /**
   * Namespaces created at start, besides 'default'. Tests give each campaign a namespace of its
   * own, so that all of them can use the same campaign id (the id is part of some artifacts)
   * and be compared with one embedded run.
   */
  namespaces?: string[];
}

export class DevServer {
  private child: ChildProcess | null = null;
  private log = '';
  readonly address: string;

  private constructor(
    readonly cli: string,
    readonly options: DevServerOptions & { port: number },
  ) {
    this.address = `127.0.0.1:${options.port}`;
  }

  static async start(options: DevServerOptions): Promise<DevServer> {
    const cli = temporalCliPath();
    if (!cli) throw new Error('no Temporal CLI built');
    const server = new DevServer(cli, { ...options, port: options.port ?? (await freePort()) });
    await server.restart();
    return server;
  }

  /** Starts (again) on the same port and database file, and waits until the frontend answers. */
  async restart(): Promise<void> {
    const args = [
      'server',
      'start-dev',
      '--headless',
      '--ip',
      '127.0.0.1',
      '--port',
      String(this.options.port),
      '--db-filename',
      this.options.dbFile,
      '--log-level',
      'warn',
      ...SEARCH_ATTRIBUTES.flatMap((a) => ['--search-attribute', a]),
      ...(this.options.dynamicConfig ?? []).flatMap((v) => ['--dynamic-config-value', v]),
      ...(this.options.namespaces ?? []).flatMap((n) => ['--namespace', n]),
    ];
    const child = spawn(this.cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    child.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000)));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the Temporal server exited during start-up:\n${this.log}`);
      const health = await this.temporal(['operator', 'cluster', 'health']);
      if (health.code === 0) return;
      if (Date.now() > deadline) throw new Error(`the Temporal server did not become healthy:\n${this.log}`);
      await sleep(500);
    }
  }

  /** The `temporal` CLI against this server (e.g. `workflow cancel`, `workflow list --query`). */
  temporal(args: string[]): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.cli, [...args, '--address', this.address], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  /** The server lost: no shutdown, no flush. */
  async kill(): Promise<void> {
    await stopChild(this.child, 'SIGKILL');
    this.child = null;
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGTERM');
    this.child = null;
  }

  get output(): string {
    return this.log;
  }
}

async function stopChild(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await closed;
  clearTimeout(timer);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A `diffem worker` child process on one queue. */
export class WorkerProcess {
  private constructor(
    readonly queue: string,
    private readonly running: ReturnType<typeof startCli>,
  ) {}

  static start(
    queue: 'diffem-cpu' | 'diffem-gpu' | 'all',
    address: string,
    bundle: string,
    namespace = 'default',
    /** Extra environment, e.g. a fault hook (DIFFEM_CRASH_WRITING). */
    env: NodeJS.ProcessEnv = {},
  ): WorkerProcess {
    const running = startCli(
      ['worker', '--queue', queue, '--workflow-bundle', bundle, '--shutdown-grace', '1s', '--concurrency', '2'],
      { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace, ...env },
    );
    return new WorkerProcess(queue, running);
  }

  get pid(): number | undefined {
    return this.running.child.pid;
  }

  /** Resolves when the worker process ends by itself (a fault hook killing it). */
  exited(): Promise<CliResult> {
    return this.running.done;
  }

  /** The worker lost: SIGKILL, no draining. */
  async kill(): Promise<CliResult> {
    this.running.child.kill('SIGKILL');
    return this.running.done;
  }

  async stop(): Promise<CliResult> {
    if (this.running.child.exitCode === null && this.running.child.signalCode === null)
      this.running.child.kill('SIGTERM');
    return this.running.done;
  }
}

/** `diffem ARGS` against the server at `address`; fails the test with stderr when it fails. */
export async function diffem(address: string, args: string[], namespace = 'default'): Promise<string> {
  const result = await runCli(args, { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace });
  if (result.code !== 0)
    throw new Error(`diffem ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** Polls `check` until it returns a value (not undefined), or fails naming `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
    await sleep(200);
  }
}
