/**
 * The `diffem` subcommands of the Temporal engine (the main CLI dispatches to
 * `temporalCommand`). Thin: parse arguments, call the client or the worker, print.
 */
import { parseArgs } from 'node:util';
import { formatMetrics } from '../local/progress.js';
import {
  HEARTBEAT_ACTIVITIES,
  type CampaignProgressView,
  type TemporalCampaignOptions,
} from '../../workflows/temporal.js';
import {
  createSchedule,
  deleteSchedule,
  listSchedules,
  pauseCampaign,
  pauseSchedule,
  queryProgress,
  resumeCampaign,
  stopCampaign,
  triggerSchedule,
  unpauseSchedule,
  type TemporalTarget,
} from './client.js';
import { DEVICE_CHOICES } from './health.js';
import { bundleWorkflows, QUEUE_CHOICES, runWorker } from './worker.js';

export const TEMPORAL_COMMANDS = ['worker', 'schedule', 'pause', 'unpause', 'stop', 'progress'] as const;

export const TEMPORAL_USAGE = `Temporal engine (server: --address or TEMPORAL_ADDRESS, --namespace or TEMPORAL_NAMESPACE):
  diffem worker [--queue diffem-cpu|diffem-gpu-train|diffem-gpu-sample|diffem-gpu|all] [--concurrency N]
                [--device auto|cpu|cuda] [--health-port PORT] [--workflow-bundle FILE]
                [--role both|workflows|activities] [--shutdown-grace 60s]
  diffem worker bundle --out FILE
  diffem pause ID | diffem unpause ID | diffem stop ID | diffem progress ID [--json]
  diffem schedule create ID CONFIG.yaml --store URI (--cron EXPR | --every DURATION)
                         [--paused] [--note TEXT] [--laps-per-run N] [--search-attributes]
  diffem schedule list [--json]
  diffem schedule pause|unpause ID [--note TEXT]
  diffem schedule trigger|delete ID`;

/** A command line mistake: the message is followed by the usage text. */
export class TemporalUsageError extends Error {
  override readonly name = 'TemporalUsageError';
  constructor(message: string) {
    super(`${message}\n\n${TEMPORAL_USAGE}`);
  }
}

const COMMON = {
  address: { type: 'string' },
  namespace: { type: 'string' },
  json: { type: 'boolean', default: false },
  note: { type: 'string' },
} as const;

function parse<O extends Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>>(
  args: string[],
  extra: O,
) {
  try {
    return parseArgs({ args, allowPositionals: true, strict: true, options: { ...COMMON, ...extra } });
  } catch (error) {
    throw new TemporalUsageError(error instanceof Error ? error.message : String(error));
  }
}

function target(values: { address?: string; namespace?: string }): TemporalTarget {
  return { address: values.address, namespace: values.namespace };
}

function one(positionals: string[], what: string, command: string): string {
  if (positionals.length !== 1) throw new TemporalUsageError(`'${command}' takes one ${what}`);
  return positionals[0];
}

function positiveInt(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0)
    throw new TemporalUsageError(`${flag} must be a non-negative integer, got '${text}'`);
  return n;
}

function port(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new TemporalUsageError(`${flag} must be a port number 0-65535, got '${text}'`);
  return n;
}

/**
 * `run --heartbeat-timeout`: how soon Temporal gives up on a silent attempt of a long activity
 * (data preparation, the Gaussian start, training, sampling, evaluation: a lost worker) and
 * retries it elsewhere, training from its last checkpoint. The default (5 min) leaves
 * room for slow device setup; small campaigns can afford seconds.
 */
export function heartbeatTimeouts(text: string): TemporalCampaignOptions['timeouts'] {
  if (!/^\d+(?:ms|s|m|h)$/.test(text))
    throw new TemporalUsageError(`--heartbeat-timeout must be a duration such as 30s or 5m, got '${text}'`);
  return Object.fromEntries(HEARTBEAT_ACTIVITIES.map((name) => [name, { heartbeat: text }]));
}

function describeProgress(p: CampaignProgressView): string {
  const state = p.paused ? 'paused' : p.stopRequested ? 'stopping after this lap' : p.phase;
  return (
    `campaign ${p.campaignId}: ${state}, lap ${p.lap}/${p.laps}, step '${p.step}' (run ${p.run})` +
    (p.metrics ? `\n  metrics: ${formatMetrics(p.metrics)}` : '') +
    '\n'
  );
}

async function workerCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    queue: { type: 'string', default: 'all' },
    concurrency: { type: 'string' },
    'workflow-bundle': { type: 'string' },
    role: { type: 'string', default: 'both' },
    'shutdown-grace': { type: 'string' },
    device: { type: 'string', default: 'auto' },
    'health-port': { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals[0] === 'bundle') {
    if (!values.out) throw new TemporalUsageError("'worker bundle' needs --out FILE");
    await bundleWorkflows(values.out);
    process.stdout.write(`workflow bundle written to ${values.out}\n`);
    return;
  }
  if (positionals.length) throw new TemporalUsageError(`unexpected argument '${positionals[0]}' for 'worker'`);
  const queue = QUEUE_CHOICES.find((choice) => choice === values.queue);
  if (queue === undefined) {
    throw new TemporalUsageError(
      `--queue must be diffem-cpu, diffem-gpu or all, or one GPU stack's queue (diffem-gpu-train, ` +
        `diffem-gpu-sample), got '${values.queue}'`,
    );
  }
  const device = DEVICE_CHOICES.find((choice) => choice === values.device);
  if (device === undefined) {
    throw new TemporalUsageError(`--device must be auto, cpu or cuda, got '${values.device}'`);
  }
  const healthPort = values['health-port'] === undefined ? undefined : port(values['health-port'], '--health-port');
  const role = values.role;
  if (role !== 'both' && role !== 'workflows' && role !== 'activities') {
    throw new TemporalUsageError(`--role must be both, workflows or activities, got '${role}'`);
  }
  const concurrency = positiveInt(values.concurrency, '--concurrency');
  process.stderr.write(`diffem: worker for queue ${queue}, device ${device} (Ctrl-C drains and stops)\n`);
  await runWorker({
    ...target(values),
    queue,
    role,
    device,
    ...(healthPort !== undefined && { healthPort }),
    ...(concurrency && { concurrency }),
    ...(values['workflow-bundle'] && { workflowBundle: values['workflow-bundle'] }),
    ...(values['shutdown-grace'] && { shutdownGraceTime: values['shutdown-grace'] }),
  });
}

async function scheduleCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, {
    store: { type: 'string' },
    cron: { type: 'string' },
    every: { type: 'string' },
    paused: { type: 'boolean', default: false },
    'laps-per-run': { type: 'string' },
    'search-attributes': { type: 'boolean', default: false },
  });
  const t = target(values);
  switch (sub) {
    case 'create': {
      if (positionals.length !== 2) throw new TemporalUsageError("'schedule create' takes an ID and a CONFIG file");
      const [scheduleId, configPath] = positionals;
      if (!values.store) throw new TemporalUsageError("--store is required for 'schedule create'");
      if ((values.cron === undefined) === (values.every === undefined))
        throw new TemporalUsageError('give one of --cron or --every');
      const lapsPerRun = positiveInt(values['laps-per-run'], '--laps-per-run');
      await createSchedule({
        ...t,
        scheduleId,
        configPath,
        store: values.store,
        ...(values.cron !== undefined && { cron: values.cron }),
        ...(values.every !== undefined && { interval: values.every }),
        paused: values.paused,
        ...(values.note !== undefined && { note: values.note }),
        options: { ...(lapsPerRun !== undefined && { lapsPerRun }), searchAttributes: values['search-attributes'] },
      });
      process.stdout.write(
        `schedule ${scheduleId} created${values.paused ? ' (paused)' : ''}: runs are workflows diffem-${scheduleId}-<time>\n`,
      );
      return;
    }
    case 'list': {
      const rows = await listSchedules(t);
      if (values.json) {
        process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        return;
      }
      if (!rows.length) process.stdout.write('no diffem schedules\n');
      for (const r of rows) {
        process.stdout.write(
          `${r.scheduleId}  ${r.spec}${r.paused ? '  [paused]' : ''}${r.note ? `  (${r.note})` : ''}\n` +
            `  next: ${r.nextRuns.slice(0, 3).join(', ') || '-'}\n` +
            r.recentRuns
              .map((run) => `  ran:  ${run.scheduledAt}  ${run.campaignId}  (workflow ${run.workflowId})\n`)
              .join(''),
        );
      }
      return;
    }
    case 'pause':
      await pauseSchedule(one(positionals, 'schedule ID', 'schedule pause'), values.note, t);
      process.stdout.write('schedule paused\n');
      return;
    case 'unpause':
      await unpauseSchedule(one(positionals, 'schedule ID', 'schedule unpause'), values.note, t);
      process.stdout.write('schedule unpaused\n');
      return;
    case 'trigger':
      await triggerSchedule(one(positionals, 'schedule ID', 'schedule trigger'), t);
      process.stdout.write('schedule triggered (skipped if a run is still in progress)\n');
      return;
    case 'delete':
      await deleteSchedule(one(positionals, 'schedule ID', 'schedule delete'), t);
      process.stdout.write('schedule deleted (campaigns it started keep running)\n');
      return;
    default:
      throw new TemporalUsageError(`unknown schedule command '${sub ?? ''}'`);
  }
}

/** Runs one Temporal subcommand: `command` is the word after `diffem`, `args` the rest. */
export async function temporalCommand(command: string, args: string[]): Promise<void> {
  switch (command) {
    case 'worker':
      return workerCommand(args);
    case 'schedule':
      return scheduleCommand(args);
    case 'pause':
    case 'unpause':
    case 'stop':
    case 'progress': {
      const { values, positionals } = parse(args, {});
      const id = one(positionals, 'campaign ID', command);
      const t = target(values);
      const progress =
        command === 'pause'
          ? await pauseCampaign(id, t)
          : command === 'unpause'
            ? await resumeCampaign(id, t)
            : command === 'stop'
              ? await stopCampaign(id, t)
              : await queryProgress(id, t);
      process.stdout.write(values.json ? JSON.stringify(progress, null, 2) + '\n' : describeProgress(progress));
      return;
    }
    default:
      throw new TemporalUsageError(`unknown command '${command}'`);
  }
}
