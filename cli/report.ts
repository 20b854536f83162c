/**
 * `diffem report ID --store URI [--out FILE]`: one self-contained HTML page for a campaign,
 * or for a comparison (`diffem compare`) of the methods on the same data: per-lap metric
 * curves, metrics against cumulative E-step network evaluations, E-step samples against
 * the true curve, the campaign's figures, and the lineage of every lap. The page is also
 * stored next to the campaign, as `campaigns/{ID}/report.html`.
 */
import { parseArgs } from 'node:util';
import { storeFor } from '../store/open.js';
import { campaignKeys } from '../workflows/keys.js';
import type { ArtifactStore } from '../store/store.js';
import type { ArtifactRef } from '../workflows/types.js';
import { loadReportData, type ReportOptions } from './report-data.js';
import { renderReportHtml } from './report-page.js';
import { writeOutFile } from './out-file.js';

export const REPORT_USAGE = 'diffem report ID --store URI [--out FILE]';

export function reportKey(id: string): string {
  return campaignKeys.report(id);
}

/** Renders the report of `id` and stores it under `campaigns/{id}/report.html`. */
export async function writeReport(
  store: ArtifactStore,
  id: string,
  options: ReportOptions = {},
): Promise<{ html: string; ref: ArtifactRef }> {
  const html = renderReportHtml(await loadReportData(store, id, options));
  const ref = await store.put(reportKey(id), new TextEncoder().encode(html));
  return { html, ref };
}

export async function reportCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { store: { type: 'string' }, out: { type: 'string' } },
  });
  if (positionals.length !== 1 || !values.store) throw new Error(`usage: ${REPORT_USAGE}`);
  const [id] = positionals;
  const store = storeFor(values.store);
  const { html, ref } = await writeReport(store, id);
  if (values.out) await writeOutFile(values.out, html);
  process.stdout.write(
    `report of ${id}: ${values.out ?? ref.key} (${html.length.toLocaleString('en-US')} bytes, stored as ${ref.key})\n`,
  );
}
