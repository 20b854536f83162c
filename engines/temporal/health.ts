/**
 * What an orchestrator needs from a worker process: a start-up check that the device it was
 * deployed for is really there, a log line saying which device each library got, and an HTTP
 * health endpoint for liveness and readiness probes.
 *
 * Device check: a training worker initialises the tfjs backend (models/backend.ts), a sampling
 * worker runs a one-row denoiser through ONNX Runtime (models/onnx/runtime.ts). With device
 * 'cuda' either failing, or no NVIDIA device node being visible at all, stops the worker before
 * it polls: a pod without its GPU crash-loops where it can be seen, instead of failing the first
 * campaign step with DeviceUnavailable or, under 'auto', silently training on the CPU.
 *
 * Endpoint (Kubernetes probe conventions): GET /healthz answers 200 while the process serves
 * HTTP at all (liveness); GET /readyz answers 200 only while every Temporal worker of the process
 * is RUNNING and the frontend answers its gRPC health check (readiness), else 503 with the reason.
 */
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { initBackend, type DeviceChoice } from '../../models/backend.js';
import { initMlpParams } from '../../models/denoisers/mlp.js';
import { DeviceUnavailableError } from '../../models/device.js';
import { ndarray } from '../../models/ndarray.js';
import { exportMlpToOnnx } from '../../models/onnx/export-mlp.js';
import { OnnxDenoiser } from '../../models/onnx/runtime.js';
import { Rng } from '../../models/rng.js';

export const DEVICE_CHOICES: readonly DeviceChoice[] = ['auto', 'cpu', 'cuda'];

/** Which device a library of this worker got. */
export interface DeviceReport {
  role: 'train' | 'sample';
  library: 'tfjs' | 'onnxruntime';
  /** tfjs backend name, or the ONNX Runtime execution provider. */
  backend: string;
  device: 'cpu' | 'cuda';
}

/** The NVIDIA device nodes the driver (or the container toolkit) exposes: /dev/nvidia0, ... */
export function visibleNvidiaDevices(devDir = '/dev'): string[] {
  try {
    return readdirSync(devDir)
      .filter((name) => /^nvidia\d+$/.test(name))
      .sort();
  } catch {
    return [];
  }
}

function requireVisibleGpu(role: DeviceReport['role']): void {
  if (visibleNvidiaDevices().length === 0) {
    throw new DeviceUnavailableError(
      `worker started with --device cuda for ${role === 'train' ? 'training' : 'sampling'}, but no NVIDIA GPU ` +
        'is visible (no /dev/nvidia0): run it on a GPU node with the NVIDIA driver and container toolkit ' +
        "(k8s: resources.limits nvidia.com/gpu; compose: the 'gpu' profile), or use --device auto / cpu",
    );
  }
}

async function checkTraining(device: DeviceChoice): Promise<DeviceReport> {
  if (device === 'cuda') requireVisibleGpu('train');
  const info = await initBackend({ device });
  return { role: 'train', library: 'tfjs', backend: info.backend, device: info.device };
}

/** One row through a four-unit MLP: proves the provider loads and runs a kernel, not just that it is listed. */
async function checkSampling(device: DeviceChoice): Promise<DeviceReport> {
  if (device === 'cuda') requireVisibleGpu('sample');
  const config = { dim: 2, condDim: 0, hidden: [4], embedDim: 4 };
  const bytes = exportMlpToOnnx(config, initMlpParams(config, Rng.derive(0, 'worker-device-check')));
  const denoiser = await OnnxDenoiser.create(bytes, { dim: 2, condDim: 0, device, threads: 1, batchSize: 1 });
  try {
    const row = ndarray([1, 2]);
    await denoiser.denoise(row, new Float32Array([1]), null);
    return { role: 'sample', library: 'onnxruntime', backend: denoiser.device, device: denoiser.device };
  } finally {
    await denoiser.dispose();
  }
}

/**
 * Initialises the libraries of the roles this worker serves on `device` and reports what each
 * got. Throws DeviceUnavailableError (with what to install or where to run) when 'cuda' cannot
 * be had.
 */
export async function checkWorkerDevices(
  roles: { train: boolean; sample: boolean },
  device: DeviceChoice,
): Promise<DeviceReport[]> {
  const reports: DeviceReport[] = [];
  if (roles.train) reports.push(await checkTraining(device));
  if (roles.sample) reports.push(await checkSampling(device));
  return reports;
}

export function describeDevices(reports: readonly DeviceReport[]): string {
  return reports
    .map((r) => `${r.role === 'train' ? 'training' : 'sampling'}: ${r.library} ${r.backend} on ${r.device}`)
    .join('; ');
}

export interface Readiness {
  ready: boolean;
  reason: string;
}

/** Ready while every worker is RUNNING and the frontend answers its health check within `timeoutMs`. */
export function workerReadiness(
  workers: readonly Pick<Worker, 'getState'>[],
  connection: Pick<NativeConnection, 'healthService' | 'withDeadline'>,
  timeoutMs = 2000,
): () => Promise<Readiness> {
  return async () => {
    const notRunning = workers.map((w) => w.getState()).filter((state) => state !== 'RUNNING');
    if (notRunning.length) return { ready: false, reason: `worker state ${notRunning.join(', ')}` };
    try {
      const response = await connection.withDeadline(Date.now() + timeoutMs, () => connection.healthService.check({}));
      // grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING
      if (response.status !== 1) return { ready: false, reason: `frontend health status ${String(response.status)}` };
    } catch (error) {
      return {
        ready: false,
        reason: `frontend unreachable: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
    return { ready: true, reason: 'workers running, frontend serving' };
  };
}

export interface HealthServer {
  /** The port bound (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

/** Serves /healthz and /readyz on `port` (all interfaces: kubelet probes come from the node). */
export async function startHealthServer(
  port: number,
  readiness: () => Promise<Readiness>,
  host = '0.0.0.0',
): Promise<HealthServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const answer = (status: number, body: string): void => {
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`${body}\n`);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return answer(405, 'GET only');
    if (path === '/healthz') return answer(200, 'ok');
    if (path === '/readyz') {
      readiness().then(
        (r) => answer(r.ready ? 200 : 503, r.reason),
        (error: unknown) => answer(503, error instanceof Error ? error.message : String(error)),
      );
      return;
    }
    answer(404, 'health endpoints: /healthz, /readyz');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(`--health-port ${port}: cannot listen (${error.code ?? error.message})`, { cause: error })),
    );
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
