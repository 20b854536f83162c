/**
 * Where a campaign's artifacts live and how tensors are read and written: one place for
 * the key layout (`campaigns/{id}/...`) and for the safetensors round trip with digest
 * checks, so every activity reads what an earlier one wrote the same way.
 */
import { openStore } from './store/open.js';
import type { ArtifactStore } from './store/store.js';
import { decodeSafetensors, encodeSafetensors } from '../models/safetensors.js';
import type { NDArray } from '../models/ndarray.js';
import type { ArtifactRef } from '../workflows/types.js';
import { BadInputError } from './errors.js';

const stores = new Map<string, ArtifactStore>();

/** One store client per URI per process (S3 clients keep connection pools). */
export function storeFor(uri: string): ArtifactStore {
  let store = stores.get(uri);
  if (!store) {
    store = openStore(uri);
    stores.set(uri, store);
  }
  return store;
}

export function campaignKey(campaignId: string, ...parts: string[]): string {
  return ['campaigns', campaignId, ...parts].join('/');
}

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
  const observations = await putTensors(
    store,
    campaignKey(campaignId, 'data', 'observations.safetensors'),
    observed,
    meta,
  );
  const clean = await putTensors(
    store,
    campaignKey(campaignId, 'data', 'clean.safetensors'),
    { x: heldout, latent },
    meta,
  );
  return { observations, clean };
}
