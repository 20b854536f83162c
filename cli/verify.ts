/**
 * `diffem verify ID --store URI [--json]`: the audit of a stored campaign. Every artifact that
 * the step journal, the lap records and the summary name (by key, size and sha256) is read
 * back and hashed again; each one is reported as ok, missing, truncated (fewer bytes than
 * recorded), grown (more bytes) or altered (same size, other sha256). The command exits
 * non-zero when anything differs, so a scheduled audit can alert on it.
 */
import { parseArgs } from 'node:util';
import { ConsoleProgress } from '../engines/local/progress.js';
import { listSteps, readLapRecords, readSummary, requireCampaign } from '../engines/records.js';
import { storeFor } from '../store/open.js';
import { ArtifactNotFoundError, sha256Hex, type ArtifactStore } from '../store/store.js';
import { collectRefs } from '../workflows/campaign.js';
import type { ArtifactRef } from '../workflows/types.js';

export const VERIFY_USAGE = 'diffem verify ID --store URI [--json]';

export type ArtifactState = 'ok' | 'missing' | 'truncated' | 'grown' | 'altered';

export interface ArtifactCheck {
  key: string;
  state: ArtifactState;
  expected: { sha256: string; bytes: number };
  /** What the store holds now (absent when missing). */
  found?: { sha256: string; bytes: number };
  /** The records that name this artifact: `journal:STEP`, `lap:N` or `summary`. */
  namedBy: string[];
}

export interface VerifyReport {
  campaignId: string;
  store: string;
  checked: number;
  ok: number;
  problems: ArtifactCheck[];
  /** One key recorded with two different digests by different records. */
  conflicts: Array<{ key: string; digests: string[] }>;
}

/** Every artifact the campaign's records name, with the records that name it. */
export async function recordedArtifacts(
  store: ArtifactStore,
  campaignId: string,
): Promise<Array<{ ref: ArtifactRef; namedBy: string[] }>> {
  await requireCampaign(store, campaignId);
  const named = new Map<string, { ref: ArtifactRef; namedBy: string[] }>();
  const add = (source: string, value: unknown) => {
    const refs: ArtifactRef[] = [];
    collectRefs(value, refs);
    for (const ref of refs) {
      // Keyed by key and digest: two records that disagree about one key are both checked.
      const id = `${ref.key}\n${ref.sha256}\n${ref.bytes}`;
      const entry = named.get(id) ?? { ref, namedBy: [] };
      if (!entry.namedBy.includes(source)) entry.namedBy.push(source);
      named.set(id, entry);
    }
  };
  for (const step of await listSteps(store, campaignId)) {
    if (step.status === 'done') add(`journal:${step.step}`, step.output);
  }
  for (const record of await readLapRecords(store, campaignId)) add(`lap:${record.lap}`, record.artifacts);
  const summary = await readSummary(store, campaignId);
  if (summary) add('summary', summary);
  return [...named.values()].sort((a, b) => (a.ref.key < b.ref.key ? -1 : a.ref.key > b.ref.key ? 1 : 0));
}

export async function verifyCampaign(
  store: ArtifactStore,
  campaignId: string,
  onProgress: (done: number, total: number) => void = () => undefined,
): Promise<VerifyReport> {
  const artifacts = await recordedArtifacts(store, campaignId);
  const problems: ArtifactCheck[] = [];
  const digestsByKey = new Map<string, Set<string>>();
  let ok = 0;
  for (const [index, { ref, namedBy }] of artifacts.entries()) {
    onProgress(index, artifacts.length);
    digestsByKey.set(ref.key, (digestsByKey.get(ref.key) ?? new Set()).add(ref.sha256));
    const expected = { sha256: ref.sha256, bytes: ref.bytes };
    let bytes: Uint8Array;
    try {
      bytes = await store.get(ref.key);
    } catch (error) {
      if (!(error instanceof ArtifactNotFoundError)) throw error;
      problems.push({ key: ref.key, state: 'missing', expected, namedBy });
      continue;
    }
    const found = { sha256: sha256Hex(bytes), bytes: bytes.byteLength };
    const state: ArtifactState =
      found.bytes < expected.bytes
        ? 'truncated'
        : found.bytes > expected.bytes
          ? 'grown'
          : found.sha256 !== expected.sha256
            ? 'altered'
            : 'ok';
    if (state === 'ok') ok++;
    else problems.push({ key: ref.key, state, expected, found, namedBy });
  }
  onProgress(artifacts.length, artifacts.length);
  const conflicts = [...digestsByKey.entries()]
    .filter(([, digests]) => digests.size > 1)
    .map(([key, digests]) => ({ key, digests: [...digests].sort() }));
  return { campaignId, store: store.uri, checked: artifacts.length, ok, problems, conflicts };
}

export function verifyText(report: VerifyReport): string {
  const lines = report.problems.map((p) => {
    const found = p.found ? `, found ${p.found.bytes} bytes sha256 ${p.found.sha256.slice(0, 12)}` : '';
    return `${p.state.toUpperCase().padEnd(9)} ${p.key} (recorded ${p.expected.bytes} bytes sha256 ${p.expected.sha256.slice(0, 12)}${found}; named by ${p.namedBy.join(', ')})`;
  });
  for (const c of report.conflicts) lines.push(`CONFLICT  ${c.key}: recorded with ${c.digests.length} digests`);
  const verdict =
    report.problems.length === 0 && report.conflicts.length === 0
      ? `campaign ${report.campaignId}: all ${report.checked} recorded artifacts match their sha256`
      : `campaign ${report.campaignId}: ${report.problems.length} of ${report.checked} recorded artifacts differ from the records`;
  return [...lines, verdict].join('\n');
}

export async function verifyCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { store: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (positionals.length !== 1 || !values.store) throw new Error(`usage: ${VERIFY_USAGE}`);
  const store = storeFor(values.store);
  const bar = new ConsoleProgress();
  const report = await verifyCampaign(store, positionals[0], (done, total) =>
    bar.heartbeat('verify', { step: done, steps: total }),
  );
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
  process.stdout.write((values.json ? JSON.stringify(report, null, 2) : verifyText(report)) + '\n');
  if (report.problems.length > 0 || report.conflicts.length > 0) process.exitCode = 1;
}
