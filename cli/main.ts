#!/usr/bin/env node
/**
 * The `diffem` command: a thin entry point over the engines and the store.
 *
 *   diffem run CONFIG.yaml --store URI [--id ID] [--engine local|temporal]
 *   diffem resume ID --store URI
 *   diffem status ID --store URI
 *   diffem history ID --store URI [--json]
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { storeFor } from '../activities/io.js';
import { getJson } from '../activities/store/store.js';
import { runLocalCampaign, manifestKey, type CampaignManifest } from '../engines/local/engine.js';
import { ConsoleProgress, formatMetrics } from '../engines/local/progress.js';
import { parseCampaignConfig, type CampaignConfig } from '../workflows/config.js';
import {
  campaignHistory,
  campaignStatus,
  campaignSummary,
  historyTable,
  progressBar,
  requireCampaign,
  runningStep,
} from './history.js';

const USAGE = `usage:
  diffem run CONFIG.yaml --store URI [--id ID] [--engine local|temporal]
  diffem resume ID --store URI
  diffem status ID --store URI
  diffem history ID --store URI [--json]

URI is a directory (default engine store) or s3://bucket/prefix.`;

class UsageError extends Error {}

export async function loadConfigFile(path: string): Promise<CampaignConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new UsageError(
      `config file ${path} is not valid YAML: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return parseCampaignConfig(document, path);
}

function defaultId(path: string): string {
  const base = path.split('/').pop() ?? 'campaign';
  return base.replace(/\.(ya?ml|json)$/i, '').replace(/[^A-Za-z0-9._-]/g, '-') || 'campaign';
}

async function runLocal(store: string, campaignId: string, config: CampaignConfig): Promise<void> {
  const progress = new ConsoleProgress();
  process.stderr.write(
    `diffem: campaign '${campaignId}' (${config.method}, seed ${config.seed}, ${config.em.laps} laps) in ${storeFor(store).uri}\n`,
  );
  const summary = await runLocalCampaign({ store, campaignId, config, progress });
  process.stdout.write(
    `campaign ${campaignId} finished: ${summary.laps} laps\n` +
      `  final reconstructions: ${formatMetrics(summary.lastMetrics)}\n` +
      `  prior samples:         ${formatMetrics(summary.priorMetrics)}\n` +
      summary.figures.map((f) => `  figure: ${f.key}\n`).join('') +
      `  history: diffem history ${campaignId} --store ${store}\n`,
  );
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      store: { type: 'string' },
      id: { type: 'string' },
      engine: { type: 'string', default: 'local' },
      json: { type: 'boolean', default: false },
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
        return startTemporalCampaign({ store, campaignId, config });
      }
      throw new UsageError(`--engine must be 'local' or 'temporal', got '${values.engine}'`);
    }
    case 'resume': {
      const campaignId = needOne('campaign ID');
      const store = needStore();
      const manifest = await requireCampaign(storeFor(store), campaignId);
      return runLocal(store, campaignId, manifest.config);
    }
    case 'status': {
      const campaignId = needOne('campaign ID');
      const store = storeFor(needStore());
      const manifest = await getJson<CampaignManifest>(store, manifestKey(campaignId)).catch(() => null);
      if (!manifest) throw new Error(`no campaign '${campaignId}' in ${store.uri}`);
      const status = await campaignStatus(store, campaignId);
      const history = await campaignHistory(store, campaignId);
      const summary = await campaignSummary(store, campaignId);
      const running = status?.status === 'running' ? await runningStep(store, campaignId) : null;
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
      const history = await campaignHistory(storeFor(needStore()), campaignId);
      process.stdout.write(values.json ? JSON.stringify(history, null, 2) + '\n' : historyTable(history) + '\n');
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
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`diffem: ${message}\n`);
  if (error instanceof UsageError) process.stderr.write(`\n${USAGE}\n`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
