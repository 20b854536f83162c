/**
 * `diffem export ID --store URI --out DIR`: a finished campaign's learned models as files, with
 * the provenance needed to trust and to reproduce them:
 *
 *     prior.onnx, prior.safetensors                 the final unconditional prior
 *     conditional.onnx, conditional.safetensors     the last lap's conditional denoiser (DiffEM)
 *     config.yaml                                   the campaign's config, as validated
 *     model-card.json, model-card.md                config, per-lap metrics, dataset digest,
 *                                                   every recorded artifact's sha256, lineage,
 *                                                   code version (package and git commit)
 *
 * Every model is read through its recorded sha256. DIR is built beside itself and renamed
 * into place, so it holds the whole export or does not exist.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { readLapRecords } from '../engines/records.js';
import { storeFor } from '../store/open.js';
import { sha256Hex, type ArtifactStore } from '../store/store.js';
import type { ArtifactRef, Metrics } from '../workflows/types.js';
import { finalModels } from '../engines/final-models.js';
import { recordedArtifacts } from './verify.js';

export const EXPORT_USAGE = 'diffem export ID --store URI --out DIR';

export interface CodeVersion {
  package: string;
  version: string;
  /** HEAD of the checkout the command ran from, when it is a git checkout. */
  gitCommit: string | null;
  gitDirty: boolean | null;
}

export interface ModelCard {
  campaignId: string;
  exportedFrom: string;
  method: string;
  data: string;
  engine: string;
  createdAt: string;
  config: unknown;
  datasetDigest: string;
  /** The campaign this one was warm-started from, if any. */
  parent: string | null;
  lapsDone: number;
  laps: Array<{ lap: number; metrics: Metrics; seconds: number; evaluations: number; seeds: Record<string, string> }>;
  final: { reconstructions: Metrics; prior: Metrics };
  files: Array<{ file: string; from: string; sha256: string; bytes: number }>;
  artifacts: Array<{ key: string; sha256: string; bytes: number }>;
  code: CodeVersion;
  reproduce: string;
}

const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function codeVersion(): Promise<CodeVersion> {
  const pkg = JSON.parse(await readFile(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  let gitCommit: string | null = null;
  let gitDirty: boolean | null = null;
  try {
    const git = (args: string[]) =>
      execFileSync('git', args, { cwd: PACKAGE_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    gitCommit = git(['rev-parse', 'HEAD']).trim();
    gitDirty = git(['status', '--porcelain', '--untracked-files=no']).trim() !== '';
  } catch {
    // Not a git checkout (an npm install): the package version is the code version.
  }
  return { package: pkg.name, version: pkg.version, gitCommit, gitDirty };
}

function metricsTable(rows: Array<{ label: string; metrics: Metrics }>): string {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))];
  const fmt = (v: number | undefined) => (v === undefined ? '-' : String(Number(v.toPrecision(4))));
  return [
    `| lap | ${names.join(' | ')} |`,
    `|---|${names.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.label} | ${names.map((n) => fmt(r.metrics[n])).join(' | ')} |`),
  ].join('\n');
}

export function modelCardMarkdown(card: ModelCard): string {
  const code = card.code.gitCommit
    ? `${card.code.package} ${card.code.version}, git ${card.code.gitCommit}${card.code.gitDirty ? ' (with uncommitted changes)' : ''}`
    : `${card.code.package} ${card.code.version} (no git checkout)`;
  return `# Model card: ${card.campaignId}

A diffusion prior learned from corrupted observations only, by ${card.method === 'diffem' ? 'DiffEM' : 'EM-MMPS'} (docs/method.md), on ${card.data} data.

- Campaign: \`${card.campaignId}\` (${card.engine} engine, created ${card.createdAt}), exported from \`${card.exportedFrom}\`
- Laps: ${card.lapsDone} after lap 0${card.parent ? `; warm-started from campaign \`${card.parent}\`` : ''}
- Dataset digest (sha256 of the observations): \`${card.datasetDigest}\`
- Code: ${code}

## Files

| file | from | sha256 | bytes |
|---|---|---|---|
${card.files.map((f) => `| ${f.file} | \`${f.from}\` | \`${f.sha256}\` | ${f.bytes} |`).join('\n')}

## Metrics per lap

Each lap's metrics are those of its E-step reconstructions (lap 0: the Gaussian's).

${metricsTable([
  ...card.laps.map((l) => ({ label: String(l.lap), metrics: l.metrics })),
  { label: 'final reconstructions', metrics: card.final.reconstructions },
  { label: 'prior samples', metrics: card.final.prior },
])}

## Reproduce

Every random draw derives from the config's seed (${(card.config as { seed: number }).seed}); with the same code version:

    ${card.reproduce}

then \`diffem verify ${card.campaignId} --store DIR\` checks the stored artifacts, and the
sha256 of the new campaign's artifacts can be compared with the ${card.artifacts.length} listed in model-card.json.

## Config

\`\`\`yaml
${toYaml(card.config).trimEnd()}
\`\`\`
`;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

export async function exportCampaign(
  store: ArtifactStore,
  campaignId: string,
  out: string,
): Promise<{ card: ModelCard; dir: string }> {
  const { manifest, summary, prior, conditional } = await finalModels(store, campaignId);
  if (await exists(out)) throw new Error(`--out ${out}: already exists; export writes a new directory`);
  const files: Array<{ file: string; ref: ArtifactRef | null }> = [
    { file: 'prior.onnx', ref: prior },
    { file: 'prior.safetensors', ref: summary.prior },
    { file: 'conditional.onnx', ref: conditional },
    { file: 'conditional.safetensors', ref: manifest.config.method === 'diffem' ? summary.finalModel : null },
  ];
  const laps = await readLapRecords(store, campaignId);
  const artifacts = (await recordedArtifacts(store, campaignId)).map(({ ref }) => ({
    key: ref.key,
    sha256: ref.sha256,
    bytes: ref.bytes,
  }));
  const parent = (manifest.config as { init?: { from?: string } }).init?.from ?? null;
  const partial = `${out}.part-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  try {
    const written: ModelCard['files'] = [];
    for (const { file, ref } of files) {
      if (!ref) continue;
      const bytes = await store.getVerified(ref);
      await writeFile(path.join(partial, file), bytes);
      written.push({ file, from: ref.key, sha256: sha256Hex(bytes), bytes: bytes.byteLength });
    }
    const configYaml = toYaml(manifest.config);
    await writeFile(path.join(partial, 'config.yaml'), configYaml);
    const card: ModelCard = {
      campaignId,
      exportedFrom: store.uri,
      method: manifest.config.method,
      data: manifest.config.data.kind,
      engine: manifest.engine,
      createdAt: manifest.createdAt,
      config: manifest.config,
      datasetDigest: summary.datasetDigest,
      parent,
      lapsDone: summary.laps,
      laps: laps.map((l) => ({
        lap: l.lap,
        metrics: l.metrics,
        seconds: l.seconds,
        evaluations: l.evaluations,
        seeds: l.seeds,
      })),
      final: { reconstructions: summary.lastMetrics, prior: summary.priorMetrics },
      files: written,
      artifacts,
      code: await codeVersion(),
      reproduce: `diffem run config.yaml --store DIR --id ${campaignId}${parent ? `   (after ${parent}, its parent, in the same store)` : ''}`,
    };
    await writeFile(path.join(partial, 'model-card.json'), JSON.stringify(card, null, 2) + '\n');
    await writeFile(path.join(partial, 'model-card.md'), modelCardMarkdown(card));
    await rename(partial, out);
    return { card, dir: out };
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
}

export async function exportCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { store: { type: 'string' }, out: { type: 'string' } },
  });
  if (positionals.length !== 1 || !values.store || !values.out) throw new Error(`usage: ${EXPORT_USAGE}`);
  const { card, dir } = await exportCampaign(storeFor(values.store), positionals[0], values.out);
  process.stdout.write(
    `exported ${card.campaignId} to ${dir}:\n` +
      card.files.map((f) => `  ${f.file.padEnd(24)} ${f.bytes} bytes  sha256 ${f.sha256.slice(0, 16)}\n`).join('') +
      `  config.yaml, model-card.md, model-card.json (${card.artifacts.length} artifacts, code ${card.code.version}${card.code.gitCommit ? ` @ ${card.code.gitCommit.slice(0, 12)}` : ''})\n`,
  );
}
