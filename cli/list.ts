/**
 * `diffem list --store URI [--json]`: one line per campaign in a store, with its method, data
 * kind, status, laps done of planned, headline metric (the last reconstructions' Sinkhorn
 * divergence for vectors, PSNR for images) and when it started and last changed.
 */
import { parseArgs } from 'node:util';
import { listCampaignIds, readLapRecords, readManifest, readStatus, readSummary } from '../engines/records.js';
import { storeFor } from '../store/open.js';
import type { ArtifactStore } from '../store/store.js';

export const LIST_USAGE = 'diffem list --store URI [--json]';

export interface CampaignListing {
  campaignId: string;
  method: string;
  data: string;
  engine: string;
  status: string;
  lapsDone: number;
  lapsPlanned: number;
  headline: { metric: string; value: number } | null;
  started: string;
  /** When the status last changed, for a campaign that is no longer running. */
  finished: string | null;
  /** The campaign it was warm-started from, if any. */
  parent: string | null;
}

const HEADLINE = ['sinkhorn', 'psnr', 'fid'];

export async function listCampaigns(store: ArtifactStore): Promise<CampaignListing[]> {
  const listings: CampaignListing[] = [];
  for (const campaignId of await listCampaignIds(store)) {
    const manifest = await readManifest(store, campaignId);
    if (!manifest) continue;
    const [status, summary, laps] = await Promise.all([
      readStatus(store, campaignId),
      readSummary(store, campaignId),
      readLapRecords(store, campaignId),
    ]);
    const metrics = summary?.lastMetrics ?? laps[laps.length - 1]?.metrics ?? {};
    const metric = HEADLINE.find((m) => typeof metrics[m] === 'number');
    const init = (manifest.config as { init?: { from?: string } }).init;
    listings.push({
      campaignId,
      method: manifest.config.method,
      data: manifest.config.data.kind,
      engine: manifest.engine,
      status: status?.status ?? 'unknown',
      lapsDone: summary ? summary.laps : Math.max(0, laps.length - 1),
      lapsPlanned: manifest.config.em.laps,
      headline: metric ? { metric, value: metrics[metric] } : null,
      started: manifest.createdAt,
      finished: status && status.status !== 'running' ? status.updatedAt : null,
      parent: init?.from ?? null,
    });
  }
  return listings;
}

export function listText(listings: CampaignListing[]): string {
  if (listings.length === 0) return 'no campaigns';
  const header = ['id', 'method', 'data', 'status', 'laps', 'headline', 'started', 'finished'];
  const rows = listings.map((l) => [
    l.campaignId,
    l.method,
    l.data,
    l.status,
    `${l.lapsDone}/${l.lapsPlanned}`,
    l.headline ? `${l.headline.metric}=${Number(l.headline.value.toPrecision(4))}` : '-',
    l.started.slice(0, 19).replace('T', ' '),
    l.finished ? l.finished.slice(0, 19).replace('T', ' ') : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [fmt(header), ...rows.map(fmt)].join('\n');
}

export async function listCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { store: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (positionals.length !== 0 || !values.store) throw new Error(`usage: ${LIST_USAGE}`);
  const listings = await listCampaigns(storeFor(values.store));
  process.stdout.write((values.json ? JSON.stringify(listings, null, 2) : listText(listings)) + '\n');
}
