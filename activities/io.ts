/**
 * Reading what an earlier step stored, with its shape and values checked, and storing the
 * corrupted dataset the same way for every data kind.
 */
import { concatRows, type NDArray } from '../models/ndarray.js';
import { putTensors } from '../store/tensors.js';
import type { ArtifactStore } from '../store/store.js';
import { campaignKeys } from '../workflows/keys.js';
import type { ArtifactRef } from '../workflows/types.js';
import { BadInputError } from './errors.js';

/** Reads one named tensor and checks its trailing shape. */
export function tensorOf(tensors: Record<string, NDArray>, name: string, source: string, trailing?: number[]): NDArray {
  const t = tensors[name];
  if (!t) throw new BadInputError('ShapeMismatch', `${source}: no tensor '${name}'`);
  if (trailing && t.shape.slice(1).join(',') !== trailing.join(',')) {
    throw new BadInputError(
      'ShapeMismatch',
      `${source}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [n, ${trailing.join(', ')}]`,
    );
  }
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i]))
      throw new BadInputError('NonFiniteData', `${source}: tensor '${name}' holds NaN or Inf`);
  }
  return t;
}

/**
 * The corrupted dataset as every campaign kind stores it: the observations (y and the
 * operators' tensors; their digest is the dataset's identity) and, for evaluation only, the
 * held-out clean set and the hidden clean points behind the observations.
 */
export async function storeDataset(
  store: ArtifactStore,
  campaignId: string,
  observed: Record<string, NDArray>,
  heldout: NDArray,
  latent: NDArray,
  meta: Record<string, string>,
): Promise<{ observations: ArtifactRef; clean: ArtifactRef }> {
  const observations = await putTensors(store, campaignKeys.observations(campaignId), observed, meta);
  const clean = await putTensors(store, campaignKeys.clean(campaignId), { x: heldout, latent }, meta);
  return { observations, clean };
}

/** `a` stacked `times` times along its rows (several samples of each row, drawn in one batch). */
export function repeatRows(a: NDArray, times: number): NDArray {
  return times === 1 ? a : concatRows(Array.from({ length: times }, () => a));
}
