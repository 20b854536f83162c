/**
 * What a deployed worker does before and beside polling: the start-up device check (no GPU
 * here, so `--device cuda` must stop the worker with a clear message and a non-zero exit), the
 * log of the device each library got, the health endpoint the probes call, the queue each
 * activity is scheduled on, and the bucket set-up script against a real S3 endpoint (s3rver).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import {
  checkWorkerDevices,
  describeDevices,
  startHealthServer,
  visibleNvidiaDevices,
  type Readiness,
} from '../engines/temporal/health.js';
import { ensureBucket } from '../engines/temporal/ensure-bucket.js';
import { createWorkers } from '../engines/temporal/worker.js';
import { queueFor, TASK_QUEUES } from '../workflows/temporal.js';
import { REPO, runCli } from './helpers/cli.js';
import { startS3, type S3Fixture } from './helpers/s3.js';

const run = promisify(execFile);
const ENSURE_BUCKET = path.join(REPO, 'dist', 'engines', 'temporal', 'ensure-bucket.js');

/** Nothing listens on port 1: a worker that got past its device check would fail to connect instead. */
const UNREACHABLE = { TEMPORAL_ADDRESS: '127.0.0.1:1' };

describe('worker start-up device check', () => {
  const gpuPresent = visibleNvidiaDevices().length > 0;

  for (const queue of ['diffem-gpu-train', 'diffem-gpu-sample', 'diffem-gpu']) {
    test(
      `--queue ${queue} --device cuda without a GPU exits non-zero before connecting`,
      { skip: gpuPresent && 'this machine has a GPU' },
      async () => {
        const result = await runCli(['worker', '--queue', queue, '--device', 'cuda'], UNREACHABLE);
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, /--device cuda for (training|sampling), but no NVIDIA GPU is visible/);
        assert.doesNotMatch(result.stderr, /cannot reach the Temporal server/);
      },
    );
  }

  test('the CPU queue checks no device; an unknown device or port is a usage error', async () => {
    const cpu = await runCli(['worker', '--queue', 'diffem-cpu', '--device', 'cuda'], UNREACHABLE);
    assert.equal(cpu.code, 1);
    assert.match(cpu.stderr, /cannot reach the Temporal server at 127\.0\.0\.1:1/);

    const device = await runCli(['worker', '--queue', 'diffem-gpu', '--device', 'gpu'], UNREACHABLE);
    assert.notEqual(device.code, 0);
    assert.match(device.stderr, /--device must be auto, cpu or cuda, got 'gpu'/);

    const port = await runCli(['worker', '--queue', 'diffem-cpu', '--health-port', 'http'], UNREACHABLE);
    assert.notEqual(port.code, 0);
    assert.match(port.stderr, /--health-port must be a port number 0-65535, got 'http'/);

    const queue = await runCli(['worker', '--queue', 'diffem-tpu'], UNREACHABLE);
    assert.notEqual(queue.code, 0);
    assert.match(queue.stderr, /--queue must be .*diffem-gpu-train, diffem-gpu-sample\), got 'diffem-tpu'/);
  });

  test('on the CPU each library reports the device it got, and the worker logs it', async () => {
    const reports = await checkWorkerDevices({ train: true, sample: true }, 'cpu');
    assert.deepEqual(
      reports.map((r) => [r.role, r.library, r.device]),
      [
        ['train', 'tfjs', 'cpu'],
        ['sample', 'onnxruntime', 'cpu'],
      ],
    );
    assert.match(describeDevices(reports), /^training: tfjs \S+ on cpu; sampling: onnxruntime cpu on cpu$/);

    // The worker logs the same line, then fails on the unreachable server.
    const result = await runCli(['worker', '--queue', 'diffem-gpu', '--device', 'auto'], UNREACHABLE);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /worker devices: training: tfjs \S+ on cpu; sampling: onnxruntime cpu on cpu/);
    assert.match(result.stderr, /cannot reach the Temporal server/);
  });

  test('NVIDIA device nodes are counted, control nodes are not', async () => {
    const dev = await mkdtemp(path.join(tmpdir(), 'diffem-dev-'));
    try {
      for (const name of ['nvidiactl', 'nvidia-uvm', 'nvidia1', 'nvidia0', 'null'])
        await writeFile(path.join(dev, name), '');
      assert.deepEqual(visibleNvidiaDevices(dev), ['nvidia0', 'nvidia1']);
      assert.deepEqual(visibleNvidiaDevices(path.join(dev, 'absent')), []);
    } finally {
      await rm(dev, { recursive: true, force: true });
    }
  });
});

describe('task queues', () => {
  test('training and sampling go to their own GPU stack; a campaign started with one GPU queue keeps it', () => {
    assert.equal(queueFor('trainConditional', TASK_QUEUES), 'diffem-gpu-train');
    assert.equal(queueFor('trainPrior', TASK_QUEUES), 'diffem-gpu-train');
    assert.equal(queueFor('posteriorSample', TASK_QUEUES), 'diffem-gpu-sample');
    assert.equal(queueFor('samplePrior', TASK_QUEUES), 'diffem-gpu-sample');
    assert.equal(queueFor('prepareData', TASK_QUEUES), 'diffem-cpu');
    const legacy = { cpu: 'diffem-cpu', gpu: 'diffem-gpu' };
    assert.equal(queueFor('trainConditional', legacy), 'diffem-gpu');
    assert.equal(queueFor('posteriorSample', legacy), 'diffem-gpu');
    assert.equal(queueFor('prepareData', legacy), 'diffem-cpu');
  });
});

describe('health endpoint', () => {
  test('/healthz answers while the process serves, /readyz follows readiness', async () => {
    let readiness: Readiness = { ready: false, reason: 'worker state INITIALIZED' };
    const server = await startHealthServer(0, async () => readiness, '127.0.0.1');
    const url = (p: string): string => `http://127.0.0.1:${server.port}${p}`;
    try {
      assert.equal((await fetch(url('/healthz'))).status, 200);
      const notReady = await fetch(url('/readyz'));
      assert.equal(notReady.status, 503);
      assert.match(await notReady.text(), /worker state INITIALIZED/);

      readiness = { ready: true, reason: 'workers running, frontend serving' };
      const ready = await fetch(url('/readyz?verbose'));
      assert.equal(ready.status, 200);
      assert.match(await ready.text(), /workers running/);

      assert.equal((await fetch(url('/metrics'))).status, 404);
      assert.equal((await fetch(url('/healthz'), { method: 'POST' })).status, 405);
    } finally {
      await server.close();
    }
    await assert.rejects(fetch(url('/healthz')));
  });

  test('a readiness check that throws reads as not ready', async () => {
    const server = await startHealthServer(0, () => Promise.reject(new Error('frontend unreachable')), '127.0.0.1');
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/readyz`);
      assert.equal(response.status, 503);
      assert.match(await response.text(), /frontend unreachable/);
    } finally {
      await server.close();
    }
  });

  test('a port already in use fails the start, naming the flag', async () => {
    const first = await startHealthServer(0, async () => ({ ready: true, reason: '' }), '127.0.0.1');
    try {
      await assert.rejects(
        startHealthServer(first.port, async () => ({ ready: true, reason: '' }), '127.0.0.1'),
        (error: Error) => {
          assert.match(error.message, new RegExp(`--health-port ${first.port}: cannot listen \\(EADDRINUSE\\)`));
          return true;
        },
      );
    } finally {
      await first.close();
    }
  });

  test(
    'a worker against a real server turns ready once it polls (TEMPORAL_ADDRESS)',
    {
      // npm run temporal:test sets DIFFEM_REQUIRE_TEMPORAL: there a missing server fails instead.
      skip:
        !process.env.TEMPORAL_ADDRESS &&
        !process.env.DIFFEM_REQUIRE_TEMPORAL &&
        'needs a Temporal server: set TEMPORAL_ADDRESS (npm run temporal:test)',
    },
    async () => {
      const suffix = `${process.pid}-${Date.now()}`;
      const lines: string[] = [];
      const workers = await createWorkers({
        queue: 'all',
        device: 'cpu',
        healthPort: 0,
        queues: { cpu: `diffem-cpu-${suffix}`, train: `diffem-train-${suffix}`, sample: `diffem-sample-${suffix}` },
        shutdownGraceTime: '1s',
        log: (line) => lines.push(line),
      });
      const running = workers.run();
      try {
        let port: number | undefined;
        let status = 0;
        for (let i = 0; i < 100 && status !== 200; i++) {
          await new Promise((r) => setTimeout(r, 100));
          port ??= Number(/health endpoint on :(\d+)/.exec(lines.join('\n'))?.[1]) || undefined;
          if (port !== undefined) status = (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
        }
        assert.equal(status, 200, lines.join('\n'));
        assert.equal(workers.workers.length, 3);
      } finally {
        await workers.shutdown();
        await running;
      }
    },
  );
});

describe('bucket set-up', () => {
  let s3: S3Fixture;
  before(async () => {
    s3 = await startS3();
  });
  after(async () => {
    await s3?.stop();
  });

  test('creates a missing bucket once, and an existing one is success', async () => {
    const options = { endpoint: s3.endpoint, credentials: s3.credentials };
    assert.equal(await ensureBucket('s3://fresh-bucket/runs', options), 'created');
    await s3.client.send(new HeadBucketCommand({ Bucket: 'fresh-bucket' }));
    assert.equal(await ensureBucket('s3://fresh-bucket', options), 'exists');
  });

  test('the Job and compose entry point: exit 0 when done, non-zero naming the cause', async () => {
    const env = { ...process.env, ...s3.env };
    const ok = await run(process.execPath, [ENSURE_BUCKET, 's3://job-bucket/runs'], { env });
    assert.match(ok.stdout, /bucket of s3:\/\/job-bucket\/runs: created/);

    const bad = run(process.execPath, [ENSURE_BUCKET, 'http://job-bucket'], { env });
    await assert.rejects(bad, (error: Error & { code: number; stderr: string }) => {
      assert.equal(error.code, 1);
      assert.match(error.stderr, /http:\/\/job-bucket/);
      return true;
    });

    const unreachable = run(process.execPath, [ENSURE_BUCKET, 's3://job-bucket'], {
      env: { ...env, DIFFEM_S3_ENDPOINT: 'http://127.0.0.1:1' },
    });
    await assert.rejects(unreachable, (error: Error & { code: number; stderr: string }) => {
      assert.equal(error.code, 1);
      assert.match(error.stderr, /cannot create or find bucket 'job-bucket' .* at http:\/\/127\.0\.0\.1:1/);
      return true;
    });

    const usage = run(process.execPath, [ENSURE_BUCKET], { env });
    await assert.rejects(usage, (error: Error & { code: number }) => error.code === 2);
  });
});
