/**
 * Tensors in the store: every tensor artifact (datasets, samples, weights, checkpoints) is one
 * safetensors file, read back through `getVerified` so a reader never decodes bytes whose
 * digest differs from the record that names them.
 */
import { decodeSafetensors, encodeSafetensors } from '../models/safetensors.js';
import type { NDArray } from '../models/ndarray.js';
import type { ArtifactRef } from './ref.js';
import type { ArtifactStore } from './store.js';

export async function putTensors(
  store: ArtifactStore,
  key: string,
  tensors: Record<string, NDArray>,
  metadata: Record<string, string> = {},
): Promise<ArtifactRef> {
  return store.put(key, encodeSafetensors(tensors, metadata));
}

export async function getTensors(
  store: ArtifactStore,
  ref: ArtifactRef,
): Promise<{ tensors: Record<string, NDArray>; metadata: Record<string, string> }> {
  return decodeSafetensors(await store.getVerified(ref), ref.key);
}
