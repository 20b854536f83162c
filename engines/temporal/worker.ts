/**
 * Temporal workers for campaigns: one worker per task queue, so GPU machines poll only the
 * GPU queue and the number of trainings / samplers that share a device is bounded.
 *
 *   diffem-cpu         the workflow itself and the CPU activities (data, evaluation, records, figures)
 *   diffem-gpu-train   training (trainConditional, trainPrior): tfjs, CUDA 11 / cuDNN 8 image
 *   diffem-gpu-sample  sampling (posteriorSample, samplePrior): ONNX Runtime, CUDA 12 / cuDNN 9 image
 *
 * `--queue diffem-gpu` serves both GPU queues in one process (a machine whose image has both
 * stacks, or the CPU-only deployments).
 *
 * The workflow code runs from a prebuilt bundle when one is given (`diffem worker bundle`
 * writes it at image build time), so a worker starts without webpack and runs exactly the
 * code that the replay tests checked.
 */
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Duration } from '@temporalio/common';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../../activities/index.js';
import type { DeviceChoice } from '../../models/backend.js';
import { DEFAULT_QUEUES, type QueueOption } from '../../workflows/temporal.js';
import { connectionSettings, describeConnection, type TemporalConnectionSettings } from './connection.js';
import { createEngineActivities } from './activities.js';
import { journaled } from './journal.js';
import { checkWorkerDevices, describeDevices, startHealthServer, workerReadiness } from './health.js';

export type QueueChoice = 'diffem-cpu' | 'diffem-gpu-train' | 'diffem-gpu-sample' | 'diffem-gpu' | 'all';
export const QUEUE_CHOICES: readonly QueueChoice[] = [
  'diffem-cpu',
  'diffem-gpu-train',
  'diffem-gpu-sample',
  'diffem-gpu',
  'all',
];

export interface RunWorkerOptions {
  /** host:port of the Temporal frontend (default TEMPORAL_ADDRESS, else localhost:7233). */
  address?: string;
  /** Default TEMPORAL_NAMESPACE, else 'default'. */
  namespace?: string;
  queue: QueueChoice;
  /**
   * Activities run at once on this worker. GPU queue: 1 by default, since every activity uses
   * the first visible device: run one worker per GPU (CUDA_VISIBLE_DEVICES=i) to use several.
   * CPU queue: half the cores, since the CPU activities are compute-bound too.
   * With queue 'all' it sets the CPU queue; the GPU queue keeps 1.
   */
  concurrency?: number;
  /**
   * A bundle written by `bundleWorkflows` (or `diffem worker bundle`); default DIFFEM_WORKFLOW_BUNDLE.
   * Without one the worker bundles the workflows at start (seconds, and webpack at run time).
   */
  workflowBundle?: string;
  /**
   * What the CPU queue's worker serves: heavy CPU activities block the event loop that also
   * completes workflow tasks, so large deployments run 'workflows' and 'activities' apart.
   */
  role?: 'both' | 'workflows' | 'activities';
  /**
   * How long in-flight activities may finish after SIGTERM before they are cancelled (their
   * retry then resumes from the last checkpoint). Keep the orchestrator's grace period longer
   * (k8s terminationGracePeriodSeconds).
   */
  shutdownGraceTime?: Duration;
  /** Task queue names; tests use unique ones. */
  queues?: QueueOption;
  /** An existing connection (tests); it is not closed by the worker. */
  connection?: NativeConnection;
  /**
   * The device the GPU queues' libraries must get, checked before polling (health.ts): 'cuda'
   * fails the start without a GPU. Default 'auto'; the CPU queue checks nothing.
   */
  device?: DeviceChoice;
  /** Serve /healthz and /readyz on this port (0: any free port). */
  healthPort?: number;
  /** Start-up lines (devices, health port); default stderr. */
  log?: (line: string) => void;
}

export const DEFAULT_SHUTDOWN_GRACE_TIME = '60s';

function nonEmpty(value: string | undefined): string | undefined {
  return value && value.trim() ? value : undefined;
}

export { temporalAddress, temporalNamespace } from './connection.js';

/** The compiled workflow entry (dist/workflows/index.js). */
export function defaultWorkflowsPath(): string {
  return fileURLToPath(new URL('../../workflows/index.js', import.meta.url));
}

/** Bundles the workflow code once, for workers (`workflowBundle`) and replay tests. */
export async function bundleWorkflows(outPath: string): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: defaultWorkflowsPath() });
  await writeFile(outPath, code);
}

/** Connects to the frontend (TLS / API key from the environment), naming the address when it fails. */
export async function connectWorker(settings: TemporalConnectionSettings): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect({
      address: settings.address,
      ...(settings.tls && { tls: settings.tls }),
      ...(settings.apiKey && { apiKey: settings.apiKey }),
    });
  } catch (error) {
    throw new Error(
      `cannot reach the Temporal server at ${describeConnection(settings)}: ${error instanceof Error ? error.message : String(error)} ` +
        `(set --address or TEMPORAL_ADDRESS)`,
      { cause: error },
    );
  }
}

export interface CampaignWorkers {
  workers: Worker[];
  /** Stops polling, lets in-flight tasks finish within the grace time, closes an owned connection. */
  shutdown(): Promise<void>;
  /** Runs every worker until shutdown (SIGINT / SIGTERM, or `shutdown()`). */
  run(): Promise<void>;
}

export async function createWorkers(options: RunWorkerOptions): Promise<CampaignWorkers> {
  const settings = connectionSettings(options);
  const namespace = settings.namespace;
  const queues = options.queues ?? DEFAULT_QUEUES;
  const gpuQueues = 'gpu' in queues ? { train: queues.gpu, sample: queues.gpu } : queues;
  const serveTrain = ['diffem-gpu-train', 'diffem-gpu', 'all'].includes(options.queue);
  const serveSample = ['diffem-gpu-sample', 'diffem-gpu', 'all'].includes(options.queue);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Before connecting: a worker without its device must not take tasks it cannot run.
  if (serveTrain || serveSample) {
    const reports = await checkWorkerDevices({ train: serveTrain, sample: serveSample }, options.device ?? 'auto');
    log(`diffem: worker devices: ${describeDevices(reports)}`);
  }
  const owned = !options.connection;
  const connection = options.connection ?? (await connectWorker(settings));
  // Journaled: a campaign started again under its id skips the steps it finished (journal.ts).
  const activities = { ...journaled(createActivities()), ...createEngineActivities() };
  const role = options.role ?? 'both';
  const shutdownGraceTime = options.shutdownGraceTime ?? DEFAULT_SHUTDOWN_GRACE_TIME;
  const bundlePath = options.workflowBundle ?? nonEmpty(process.env.DIFFEM_WORKFLOW_BUNDLE);
  const workflowCode: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> = bundlePath
    ? { workflowBundle: { codePath: bundlePath } }
    : { workflowsPath: defaultWorkflowsPath() };

  const workers: Worker[] = [];
  try {
    if (options.queue === 'diffem-cpu' || options.queue === 'all') {
      workers.push(
        await Worker.create({
          connection,
          namespace,
          taskQueue: queues.cpu,
          ...(role !== 'activities' ? workflowCode : {}),
          ...(role !== 'workflows'
            ? {
                activities,
                maxConcurrentActivityTaskExecutions:
                  options.concurrency ?? Math.max(1, Math.floor(availableParallelism() / 2)),
              }
            : {}),
          shutdownGraceTime,
        }),
      );
    }
    const gpuTaskQueues = new Set<string>();
    if (serveTrain) gpuTaskQueues.add(gpuQueues.train);
    if (serveSample) gpuTaskQueues.add(gpuQueues.sample);
    for (const taskQueue of gpuTaskQueues) {
      workers.push(
        await Worker.create({
          connection,
          namespace,
          taskQueue,
          activities,
          maxConcurrentActivityTaskExecutions: options.queue === 'all' ? 1 : (options.concurrency ?? 1),
          shutdownGraceTime,
        }),
      );
    }
  } catch (error) {
    if (owned) await connection.close();
    throw error;
  }

  const shutdown = async (): Promise<void> => {
    for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  return {
    workers,
    shutdown,
    run: async () => {
      const health =
        options.healthPort === undefined
          ? null
          : await startHealthServer(options.healthPort, workerReadiness(workers, connection));
      if (health) log(`diffem: health endpoint on :${health.port} (/healthz, /readyz)`);
      try {
        await Promise.all(workers.map((worker) => worker.run()));
      } finally {
        await health?.close();
        if (owned) await connection.close();
      }
    },
  };
}

/** `diffem worker`: polls the chosen queue(s) until SIGINT / SIGTERM. */
export async function runWorker(options: RunWorkerOptions): Promise<void> {
  const { run } = await createWorkers(options);
  await run();
}
