/**
 * `diffem pause|unpause|stop|progress ID --store URI` for a campaign on the embedded engine:
 * requests go through the campaign's control record, which the running process reads before
 * every step; progress reads the status, the running step and the lap records. A campaign
 * whose manifest says Temporal is handed to the Temporal commands instead.
 */
import { parseArgs } from 'node:util';
import { formatMetrics } from '../engines/local/progress.js';
import {
  readControl,
  readLapRecords,
  readRunningStep,
  readStatus,
  requestControl,
  requireCampaign,
} from '../engines/records.js';
import { storeFor } from '../store/open.js';
import type { ArtifactStore } from '../store/store.js';
import { progressBar } from './history.js';

export type ControlCommand = 'pause' | 'unpause' | 'stop' | 'progress';

export function isControlCommand(command: string | undefined): command is ControlCommand {
  return command === 'pause' || command === 'unpause' || command === 'stop' || command === 'progress';
}

/** Whether this control command names a store, and the campaign there runs on the embedded engine. */
export async function controlsLocalCampaign(args: string[]): Promise<boolean> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: false,
    options: { store: { type: 'string' } },
  });
  if (typeof values.store !== 'string' || positionals.length !== 1) return false;
  const manifest = await requireCampaign(storeFor(values.store), positionals[0]);
  return manifest.engine === 'local';
}

export async function localControlCommand(command: ControlCommand, args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { store: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const campaignId = positionals[0];
  const store = storeFor(values.store as string);
  const manifest = await requireCampaign(store, campaignId);
  if (command === 'pause') await refusePauseWithoutLapBoundary(store, campaignId, manifest.config.em.laps);
  if (command !== 'progress') await requestControl(store, campaignId, command);
  const [status, control, running, laps] = await Promise.all([
    readStatus(store, campaignId),
    readControl(store, campaignId),
    readRunningStep(store, campaignId),
    readLapRecords(store, campaignId),
  ]);
  const last = laps[laps.length - 1];
  const view = {
    campaignId,
    engine: 'local' as const,
    status: status?.status ?? 'unknown',
    paused: control.paused,
    stopRequested: control.stopRequested,
    lapsDone: last ? last.lap : null,
    laps: manifest.config.em.laps,
    lastMetrics: last?.metrics ?? null,
    running: status?.status === 'running' || status?.status === 'paused' ? running : null,
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(view, null, 2) + '\n');
    return;
  }
  const live = status?.status === 'running' || status?.status === 'paused';
  const request =
    command === 'pause'
      ? live
        ? 'pause requested: the campaign waits before its next step'
        : 'pause recorded: the campaign will wait before its next step when it runs'
      : command === 'unpause'
        ? 'unpaused'
        : command === 'stop'
          ? 'stop requested: the campaign ends after the lap in progress and runs its final stage'
          : null;
  const state = control.stopRequested ? 'stopping after this lap' : control.paused ? 'paused' : view.status;
  process.stdout.write(
    (request ? `${request}\n` : '') +
      `campaign ${campaignId}: ${state}, lap ${view.lapsDone ?? '-'} of ${view.laps} recorded` +
      (view.lastMetrics ? `\n  last lap: ${formatMetrics(view.lastMetrics)}` : '') +
      (view.running ? `\n  running: ${progressBar(view.running)}` : '') +
      '\n',
  );
}

/**
 * A pause holds a campaign at its next lap boundary (engines/local/engine.ts beforeLap). A
 * running campaign in its last lap (laps run 0..laps) or final stage has none left, so the
 * pause would be recorded and never act: refuse it, as the Temporal engine's update does.
 */
async function refusePauseWithoutLapBoundary(store: ArtifactStore, campaignId: string, laps: number): Promise<void> {
  const [status, control, records] = await Promise.all([
    readStatus(store, campaignId),
    readControl(store, campaignId),
    readLapRecords(store, campaignId),
  ]);
  if (status?.status !== 'running' || control.paused) return;
  const lapsDone = records.length > 0 ? records[records.length - 1].lap : -1;
  if (lapsDone + 1 < laps) return;
  throw new Error(
    lapsDone >= laps
      ? `campaign ${campaignId} is in its final stage: 'pause' no longer applies`
      : `campaign ${campaignId} is in its last lap (${laps} of ${laps}): 'pause' acts at the next lap boundary and there is none left`,
  );
}
