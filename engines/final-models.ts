/**
 * A finished campaign's learned models, as the commands that use them (sample, reconstruct,
 * export) find them: the final prior (unconditional, the `final/prior` step) and the last
 * conditional model (the M-step of the last lap done), each as its ONNX file with the sha256
 * that the campaign's records give it, so a command never runs a model the records disown.
 * Also the one way those commands write files: whole or not at all.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import { listSteps, readLapRecords, readSummary, requireCampaign, type CampaignManifest } from './records.js';
import type { ArtifactStore } from '../store/store.js';
import { campaignKeys } from '../workflows/keys.js';
import type { ArtifactRef, CampaignSummary } from '../workflows/types.js';

export interface FinalModels {
  manifest: CampaignManifest;
  summary: CampaignSummary;
  /** The final prior, ONNX (absent when the campaign never trained one). */
  prior: ArtifactRef | null;
  /** The last lap's conditional model, ONNX (DiffEM only). */
  conditional: ArtifactRef | null;
}

function refNamed(refs: ArtifactRef[], key: string): ArtifactRef | null {
  return refs.find((r) => r.key === key) ?? null;
}

export async function finalModels(store: ArtifactStore, campaignId: string): Promise<FinalModels> {
  const manifest = await requireCampaign(store, campaignId);
  const summary = await readSummary(store, campaignId);
  if (!summary) {
    throw new Error(`campaign '${campaignId}' in ${store.uri} has not finished: it has no final prior yet`);
  }
  const laps = await readLapRecords(store, campaignId);
  const lastLap = laps.find((l) => l.lap === summary.laps);
  const conditional =
    manifest.config.method === 'diffem' && lastLap
      ? refNamed(lastLap.artifacts, campaignKeys.network(campaignId, { lap: summary.laps }, 'denoiser.onnx'))
      : null;
  // The final stage has no lap record: its prior's ONNX ref is in the step journal (embedded
  // engine). A Temporal campaign has no journal; its stored file is taken as it is, unverified.
  const priorKey = campaignKeys.network(campaignId, 'prior', 'denoiser.onnx');
  const priorStep = (await listSteps(store, campaignId)).find((s) => s.step === 'final/prior' && s.status === 'done');
  const recorded = (priorStep?.output as { onnx?: ArtifactRef } | undefined)?.onnx;
  const prior = recorded ?? (summary.prior ? await store.head(priorKey) : null);
  return { manifest, summary, prior, conditional };
}

/** Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half a file. */
export async function writeFileWhole(path: string, bytes: Uint8Array): Promise<void> {
  const temp = `${path}.part-${process.pid}`;
  try {
    await writeFile(temp, bytes);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
