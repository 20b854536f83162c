/**
 * Every artifact a finished campaign recorded, key to sha256: the lap records' artifacts (as
 * `diffem history --json` prints them) and the summary's refs (final model, prior, samples,
 * figures). Two runs of one config that
 * agree here wrote the same bytes.
 */
import { runCli } from './cli.js';
import { openStore } from '../../store/open.js';
import { readSummary } from '../../engines/records.js';

export async function campaignDigests(
  store: string,
  id: string,
  env: NodeJS.ProcessEnv = {},
): Promise<Map<string, string>> {
  const history = await runCli(['history', id, '--store', store, '--json'], env);
  if (history.code !== 0) throw new Error(`diffem history ${id} failed: ${history.stderr}`);
  const laps = JSON.parse(history.stdout) as Array<{ artifacts: Array<{ key: string; sha256: string }> }>;
  const map = new Map(laps.flatMap((l) => l.artifacts.map((a) => [a.key, a.sha256] as [string, string])));
  const status = await runCli(['status', id, '--store', store, '--json'], env);
  if (status.code !== 0 || !(JSON.parse(status.stdout) as { finished: boolean }).finished) {
    throw new Error(`campaign ${id} is not finished: ${status.stdout}${status.stderr}`);
  }
  const merged = { ...process.env, ...env };
  // The SDK's default chain reads process.env; the child's credentials are passed explicitly.
  const credentials =
    merged.AWS_ACCESS_KEY_ID && merged.AWS_SECRET_ACCESS_KEY
      ? { accessKeyId: merged.AWS_ACCESS_KEY_ID, secretAccessKey: merged.AWS_SECRET_ACCESS_KEY }
      : undefined;
  const summary = await readSummary(openStore(store, { env: merged, credentials }), id);
  for (const value of Object.values(summary ?? {})) {
    for (const ref of Array.isArray(value) ? value : [value]) {
      const r = ref as { key?: unknown; sha256?: unknown } | null;
      if (r && typeof r.key === 'string' && typeof r.sha256 === 'string') map.set(r.key, r.sha256);
    }
  }
  return map;
}

/** The same artifacts with the campaign id taken out of the keys, to compare two ids. */
export function withoutId(digests: Map<string, string>, id: string): Map<string, string> {
  return new Map([...digests].map(([key, sha]) => [key.replace(`campaigns/${id}/`, 'campaigns/*/'), sha]));
}
