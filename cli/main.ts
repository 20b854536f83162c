#!/usr/bin/env node
/**
 * The `diffem` command: a thin entry point over the engines and the store.
 *
 *   diffem run CONFIG.yaml --store URI [--id ID] [--engine local|temporal]
 *   diffem resume ID --store URI
 *   diffem status ID --store URI
 *   diffem history ID --store URI [--json]
 *   diffem compare CONFIG.yaml --store URI [--id ID] [--out FILE] [--same-settings] [--equal-laps]
 *   diffem report ID --store URI [--out FILE]
 *   diffem list | verify | sample | reconstruct | export   (using and auditing a finished campaign)
 */
import { parseArgs } from 'node:util';
import { storeFor } from '../store/open.js';
import { redactSecrets } from '../store/secrets.js';
import { CampaignStoppedError, runLocalCampaign } from '../engines/local/engine.js';
import { readManifest, readRunningStep, readStatus, readSummary, requireCampaign } from '../engines/records.js';
import { ConsoleProgress, formatMetrics } from '../engines/local/progress.js';
import type { CampaignConfig } from '../workflows/config.js';
import { ConfigFileError, loadConfigFile } from '../engines/config-file.js';
import { controlsLocalCampaign, isControlCommand, localControlCommand } from './control.js';
import { campaignHistory, chainText, historyTable, progressBar } from './history.js';
import { lineageOf } from '../engines/lineage.js';

// The AWS SDK warns on every S3 use that its releases after January 2027 need Node 22; the
// project supports Node 20, so that one notice is dropped and every other warning shown.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name !== 'NodeVersionSupportWarning') process.stderr.write(`${warning.name}: ${warning.message}\n`);
});

const USAGE = `usage:
  diffem run CONFIG.yaml --store URI [--id ID] [--engine local|temporal]
             [--wait] [--laps-per-run N] [--search-attributes] [--heartbeat-timeout 5m]   (temporal)
  diffem resume ID --store URI
  diffem status ID --store URI
  diffem history ID --store URI [--json]
  diffem pause|unpause|stop|progress ID --store URI [--json]   (embedded engine: before the next step / after this lap)
  diffem compare CONFIG.yaml --store URI [--id ID] [--out FILE]   (DiffEM and EM-MMPS on the same data,
                                                                  at equal laps and at equal compute)
  diffem report ID --store URI [--out FILE]                       (self-contained HTML report)

After a campaign:
  diffem list --store URI [--json]                                (one line per campaign)
  diffem verify ID --store URI [--json]                           (re-hash every recorded artifact)
  diffem sample ID --store URI --count N --out FILE.safetensors|FILE.png [--seed S]
  diffem reconstruct ID --store URI --observations FILE.safetensors --out FILE.safetensors|FILE.png [--samples K] [--seed S]
  diffem export ID --store URI --out DIR                          (models, model card)

Retraining (a config with data.source, a growing folder or S3 prefix; init: { from: ID } warm-starts):
  diffem retrain CONFIG.yaml --store URI --schedule NAME [--warm-laps N]   (one tick: from cron)
  diffem simulate CONFIG.yaml --part NAME --count N --out FILE.safetensors (observation files to try it)

Temporal (--engine temporal; TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE):
  diffem worker [--queue diffem-cpu|diffem-gpu-train|diffem-gpu-sample|diffem-gpu|all] [--device auto|cpu|cuda] [--health-port PORT] [--concurrency N] [--workflow-bundle FILE] [--role both|workflows|activities] [--shutdown-grace 60s]
  diffem worker bundle --out FILE
  diffem pause|unpause|stop|progress ID [--address HOST:PORT] [--namespace NS] [--json]
  diffem schedule create ID CONFIG.yaml --store URI (--cron EXPR | --every DURATION) [--paused] [--note TEXT] [--laps-per-run N] [--search-attributes]
  diffem schedule list [--json] | schedule pause|unpause ID [--note TEXT] | schedule trigger|delete ID

URI is a directory or s3://bucket/prefix.`;

class UsageError extends Error {}

function defaultId(path: string): string {
  const base = path.split('/').pop() ?? 'campaign';
  return base.replace(/\.(ya?ml|json)$/i, '').replace(/[^A-Za-z0-9._-]/g, '-') || 'campaign';
}

async function runLocal(store: string, campaignId: string, config: CampaignConfig): Promise<void> {
  const progress = new ConsoleProgress();
  process.stderr.write(
    `diffem: campaign '${campaignId}' (${config.method}, seed ${config.seed}, ${config.em.laps} laps) in ${storeFor(store).uri}\n`,
  );
  const summary = await withStopSignals(store, campaignId, (stop) =>
    runLocalCampaign({ store, campaignId, config, progress, stop }),
  );
  process.stdout.write(
    `campaign ${campaignId} finished: ${summary.laps} laps\n` +
      `  final reconstructions: ${formatMetrics(summary.lastMetrics)}\n` +
      `  prior samples:         ${formatMetrics(summary.priorMetrics)}\n` +
      summary.figures.map((f) => `  figure: ${f.key}\n`).join('') +
      `  history: diffem history ${campaignId} --store ${store}\n`,
  );
}

/**
 * SIGTERM or Ctrl-C stops the campaign the orderly way: the running steps are cancelled at
 * their next checkpoint, the writes under way complete, the status says where it stopped,
 * and the process exits non-zero (130 for SIGINT, 143 for SIGTERM). A second signal exits at
 * once, which is still safe: every store write is atomic and the journal resumes from there.
 * A full disk gets a hint, since `resume` continues once there is space.
 */
async function withStopSignals<T>(
  store: string,
  campaignId: string,
  run: (stop: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(codes[signal]);
    process.stderr.write(`\ndiffem: ${signal}: stopping after the current write (${signal} again to quit now)\n`);
    controller.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run(controller.signal);
  } catch (error) {
    const resume = `diffem resume ${campaignId} --store ${store}`;
    if (error instanceof CampaignStoppedError) {
      process.exitCode = codes[error.reason] ?? 1;
      throw new Error(`campaign '${campaignId}' ${error.message}; continue with: ${resume}`, { cause: error });
    }
    if (error instanceof Error && /\bENOSPC\b/.test(error.message)) {
      throw new Error(
        `${error.message}\n  the store's disk is full; every finished step is kept: free space, then ${resume}`,
        {
          cause: error,
        },
      );
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Subcommands that talk to a Temporal server, with their own options. */
const TEMPORAL_COMMANDS = new Set(['worker', 'schedule', 'pause', 'unpause', 'stop', 'progress']);

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (isControlCommand(command) && (await controlsLocalCampaign(rest))) return localControlCommand(command, rest);
  if (command !== undefined && TEMPORAL_COMMANDS.has(command)) {
    const { temporalCommand } = await import('../engines/temporal/cli.js');
    return temporalCommand(command, rest);
  }
  // These parse their own options.
  if (command === 'compare') return (await import('./compare.js')).compareCommand(rest);
  if (command === 'report') return (await import('./report.js')).reportCommand(rest);
  if (command === 'list') return (await import('./list.js')).listCommand(rest);
  if (command === 'verify') return (await import('./verify.js')).verifyCommand(rest);
  if (command === 'sample') return (await import('./sample.js')).sampleCommand(rest);
  if (command === 'reconstruct') return (await import('./reconstruct.js')).reconstructCommand(rest);
  if (command === 'export') return (await import('./export.js')).exportCommand(rest);
  if (command === 'retrain') return (await import('./retrain.js')).retrainCommand(rest);
  if (command === 'simulate') return (await import('./retrain.js')).simulateCommand(rest);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      store: { type: 'string' },
      id: { type: 'string' },
      engine: { type: 'string', default: 'local' },
      json: { type: 'boolean', default: false },
      address: { type: 'string' },
      namespace: { type: 'string' },
      wait: { type: 'boolean', default: false },
      'laps-per-run': { type: 'string' },
      'search-attributes': { type: 'boolean', default: false },
      'heartbeat-timeout': { type: 'string' },
    },
  });
  const needStore = (): string => {
    if (!values.store) throw new UsageError(`--store is required for '${command}'`);
    return values.store;
  };
  const needOne = (what: string): string => {
    if (positionals.length !== 1) throw new UsageError(`'${command}' takes one ${what}`);
    return positionals[0];
  };
  switch (command) {
    case 'run': {
      const path = needOne('CONFIG file');
      const store = needStore();
      const config = await loadConfigFile(path);
      const campaignId = values.id ?? defaultId(path);
      if (values.engine === 'local') return runLocal(store, campaignId, config);
      if (values.engine === 'temporal') {
        const { startTemporalCampaign } = await import('../engines/temporal/client.js');
        const { heartbeatTimeouts } = await import('../engines/temporal/cli.js');
        return startTemporalCampaign({
          store,
          campaignId,
          config,
          address: values.address,
          namespace: values.namespace,
          wait: values.wait,
          options: {
            lapsPerRun: values['laps-per-run'] ? Number(values['laps-per-run']) : undefined,
            searchAttributes: values['search-attributes'],
            ...(values['heartbeat-timeout'] && { timeouts: heartbeatTimeouts(values['heartbeat-timeout']) }),
          },
        });
      }
      throw new UsageError(`--engine must be 'local' or 'temporal', got '${values.engine}'`);
    }
    case 'resume': {
      const campaignId = needOne('campaign ID');
      const store = needStore();
      const manifest = await requireCampaign(storeFor(store), campaignId);
      if (manifest.engine === 'temporal') {
        throw new UsageError(
          `campaign '${campaignId}' runs on Temporal, which resumes it by itself; to continue a paused one: diffem unpause ${campaignId}`,
        );
      }
      return runLocal(store, campaignId, manifest.config);
    }
    case 'status': {
      const campaignId = needOne('campaign ID');
      const store = storeFor(needStore());
      const manifest = await readManifest(store, campaignId).catch(() => null);
      if (!manifest) throw new Error(`no campaign '${campaignId}' in ${store.uri}`);
      const status = await readStatus(store, campaignId);
      const history = await campaignHistory(store, campaignId);
      const summary = await readSummary(store, campaignId);
      const running = status?.status === 'running' ? await readRunningStep(store, campaignId) : null;
      const last = history[history.length - 1];
      const report = {
        campaignId,
        engine: manifest.engine,
        status: status?.status ?? 'unknown',
        lapsRecorded: history.length,
        laps: manifest.config.em.laps,
        lastLap: last ? { lap: last.lap, metrics: last.metrics } : null,
        error: status?.error,
        finished: summary !== null,
        running,
      };
      if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else {
        process.stdout.write(
          `campaign ${campaignId}: ${report.status} (${manifest.engine} engine), ${Math.max(0, history.length - 1)}/${report.laps} laps after lap 0` +
            (last ? `\n  lap ${last.lap}: ${formatMetrics(last.metrics)}` : '') +
            (status?.error ? `\n  error: ${status.error}` : '') +
            (running ? `\n  running: ${progressBar(running)}` : '') +
            '\n',
        );
      }
      return;
    }
    case 'history': {
      const campaignId = needOne('campaign ID');
      const store = storeFor(needStore());
      const history = await campaignHistory(store, campaignId);
      const chain = await lineageOf(store, campaignId);
      if (values.json) process.stdout.write(JSON.stringify(history, null, 2) + '\n');
      else
        process.stdout.write(
          (chain.length > 1 || chain[0]?.snapshot ? (await chainText(store, chain)) + '\n\n' : '') +
            historyTable(history) +
            '\n',
        );
      return;
    }
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const message = redactSecrets(error instanceof Error ? error.message : String(error));
  process.stderr.write(`diffem: ${message}\n`);
  if (error instanceof UsageError) process.stderr.write(`\n${USAGE}\n`);
  process.exitCode ||=
    error instanceof UsageError ||
    error instanceof ConfigFileError ||
    (error instanceof Error && error.name === 'TemporalUsageError')
      ? 2
      : 1;
});
