/**
 * A growing source of vector observations (`data.source`): a directory or S3 prefix of
 * .safetensors files, each with `y` [n, obsDim] and `A` [n, obsDim, dim], to which new files
 * are added between campaigns. A campaign learns from every file present when it prepares its
 * data, in name order, and records the snapshot (each file's name, sha256 and rows), so its
 * dataset is known exactly and a scheduler can tell whether anything new has arrived.
 */
import { concatRows, type NDArray } from '../../models/ndarray.js';
import { decodeSafetensors } from '../../models/safetensors.js';
import { openStore } from '../../store/open.js';
import { sha256Hex } from '../../store/store.js';
import type { VectorCampaignConfig } from '../../workflows/config.js';
import { BadInputError } from '../errors.js';
import { tensorOf } from '../io.js';
import { channelOf } from './channel.js';

export interface SourceFile {
  name: string;
  sha256: string;
  bytes: number;
}

export interface SourceSnapshot {
  source: string;
  files: SourceFile[];
  /** sha256 over the names and digests: equal snapshots, equal data. */
  digest: string;
}

function snapshotDigest(files: SourceFile[]): string {
  return sha256Hex(new TextEncoder().encode(files.map((f) => `${f.name}\t${f.sha256}\n`).join('')));
}

async function readSource(source: string): Promise<Array<{ file: SourceFile; body: Uint8Array }>> {
  const store = openStore(source);
  const names = (await store.list('')).filter((k) => k.endsWith('.safetensors'));
  const read = [];
  for (const name of names) {
    const body = await store.get(name);
    read.push({ file: { name, sha256: sha256Hex(body), bytes: body.byteLength }, body });
  }
  return read;
}

/** The files a source holds now, without reading their tensors (a scheduler's check). */
export async function snapshotSource(source: string): Promise<SourceSnapshot> {
  const files = (await readSource(source)).map((r) => r.file);
  return { source, files, digest: snapshotDigest(files) };
}

/** Every observation in the source, concatenated in file-name order, with the snapshot it came from. */
export async function loadSource(
  config: VectorCampaignConfig,
  source: string,
): Promise<{ y: NDArray; A: NDArray; snapshot: SourceSnapshot & { rows: number[] } }> {
  const channel = channelOf(config);
  const read = await readSource(source);
  if (read.length === 0) {
    throw new BadInputError('ShapeMismatch', `data.source ${source}: holds no .safetensors observation files`);
  }
  const ys: NDArray[] = [];
  const As: NDArray[] = [];
  for (const { file, body } of read) {
    const where = `${source.replace(/\/$/, '')}/${file.name}`;
    let tensors: Record<string, NDArray>;
    try {
      tensors = decodeSafetensors(body, where).tensors;
    } catch (error) {
      throw new BadInputError('ShapeMismatch', error instanceof Error ? error.message : String(error));
    }
    const y = tensorOf(tensors, 'y', where, [channel.obsDim]);
    const A = tensorOf(tensors, 'A', where, [channel.obsDim, channel.dim]);
    if (A.shape[0] !== y.shape[0]) {
      throw new BadInputError(
        'ShapeMismatch',
        `${where}: ${A.shape[0]} operators 'A' for ${y.shape[0]} observations 'y'`,
      );
    }
    ys.push(y);
    As.push(A);
  }
  const files = read.map((r) => r.file);
  return {
    y: concatRows(ys),
    A: concatRows(As),
    snapshot: { source, files, digest: snapshotDigest(files), rows: ys.map((y) => y.shape[0]) },
  };
}
