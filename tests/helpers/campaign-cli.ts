/**
 * What a user reads of a campaign through the `diffem` command: its status, its lap records,
 * and the sha256 of every artifact it produced (lap records and the summary), keyed without
 * the campaign id so that two campaigns of the same config can be compared.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from './cli.js';

export interface CampaignStatusView {
  campaignId: string;
  engine: string;
  status: string;
  lapsRecorded: number;
  laps: number;
  finished: boolean;
  error?: string;
}

export interface LapView {
  lap: number;
  metrics: Record<string, number>;
  artifacts: Array<{ key: string; sha256: string }>;
  attempts: number;
  failures: number;
}

export async function campaignStatus(store: string, id: string): Promise<CampaignStatusView> {
  const result = await runCli(['status', id, '--store', store, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as CampaignStatusView;
}

export async function lapHistory(store: string, id: string): Promise<LapView[]> {
  const result = await runCli(['history', id, '--store', store, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as LapView[];
}

/** Artifact key (campaign id replaced by `*`) -> sha256, for lap records and the summary. */
export async function artifactDigests(store: string, id: string): Promise<Map<string, string>> {
  const prefix = `campaigns/${id}/`;
  const generic = (key: string): string => (key.startsWith(prefix) ? `campaigns/*/${key.slice(prefix.length)}` : key);
  const map = new Map<string, string>();
  for (const lap of await lapHistory(store, id)) for (const a of lap.artifacts) map.set(generic(a.key), a.sha256);
  const summary = JSON.parse(await readFile(path.join(store, 'campaigns', id, 'summary.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  for (const value of Object.values(summary)) {
    const refs = Array.isArray(value) ? value : [value];
    for (const ref of refs as Array<{ key?: unknown; sha256?: unknown } | null>) {
      if (ref && typeof ref.key === 'string' && typeof ref.sha256 === 'string') map.set(generic(ref.key), ref.sha256);
    }
  }
  assert.ok(map.size > 10, `campaign ${id} lists only ${map.size} artifacts`);
  return map;
}

/**
 * What a server test compares against: a temporary directory holding the bundled workflows and
 * the artifact digests of the same campaign run on the embedded engine under the same id (the
 * id is part of some artifacts: safetensors metadata, figure titles).
 */
export async function embeddedReference(
  prefix: string,
  config: string,
  id: string,
): Promise<{ dir: string; bundle: string; reference: Map<string, string> }> {
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  const bundle = path.join(dir, 'workflow-bundle.js');
  const bundled = await runCli(['worker', 'bundle', '--out', bundle]);
  assert.equal(bundled.code, 0, bundled.stderr);
  const embedded = await runCli(['run', config, '--store', path.join(dir, 'embedded'), '--id', id]);
  assert.equal(embedded.code, 0, embedded.stderr);
  return { dir, bundle, reference: await artifactDigests(path.join(dir, 'embedded'), id) };
}
