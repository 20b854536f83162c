/** Builds a vector channel from its configuration. */
import type { VectorChannel } from './channel.js';
import { maskChannel } from './mask.js';
import { projectionChannel } from './projection.js';

export type VectorChannelSpec =
  { kind: 'projection'; obsDim: number; noiseStd: number } | { kind: 'mask'; keep: number; noiseStd: number };

export function vectorChannel(spec: VectorChannelSpec, dim: number): VectorChannel {
  switch (spec.kind) {
    case 'projection':
      return projectionChannel(dim, spec.obsDim, spec.noiseStd);
    case 'mask':
      return maskChannel(dim, spec.keep, spec.noiseStd);
  }
}
