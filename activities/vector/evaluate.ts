/**
 * Evaluation of a vector lap: how tightly its reconstructions concentrate on the true curve
 * (docs/method.md#manifold-metrics):
 *   sinkhorn           debiased Sinkhorn divergence to held-out clean samples (subsampled,
 *                      stream `metrics/lap-k`);
 *   curve_distance_*   distance of each reconstruction to the curve: mean, median, p90;
 *   coverage           fraction of the curve's arc bins with a reconstruction nearby;
 *   consistency        mean ||A x - y||^2 / (2 s_y^2) against the observations (about m/2
 *                      for exact posterior samples).
 */
import { dataConsistency } from '../../models/metrics/consistency.js';
import { curveCoverage, curveDistances, summarizeDistances } from '../../models/metrics/curve.js';
import { sinkhornDivergence } from '../../models/metrics/sinkhorn.js';
import type { CurveParams } from '../../models/manifold.js';
import { concatRows, takeRows, type NDArray } from '../../models/ndarray.js';
import { Rng } from '../../models/rng.js';
import { getJson, type ArtifactStore } from '../../store/store.js';
import { storeFor } from '../../store/open.js';
import { getTensors } from '../../store/tensors.js';
import type { VectorCampaignConfig } from '../../workflows/config.js';
import type { ArtifactRef, EvaluateInput, EvaluateOutput, Metrics } from '../../workflows/types.js';
import type { Untimed } from '../activity.js';
import { yieldToEventLoop } from '../context.js';
import { tensorOf } from '../io.js';
import { loadSamples, loadShard } from './data.js';

export async function manifoldMetrics(
  store: ArtifactStore,
  config: VectorCampaignConfig,
  x: NDArray,
  clean: ArtifactRef,
  truth: ArtifactRef,
  rng: Rng,
): Promise<Metrics> {
  const curve = await getJson<CurveParams>(store, truth.key);
  const reference = tensorOf((await getTensors(store, clean)).tensors, 'x', clean.key, [config.data.dim]);
  const k = Math.min(config.metrics.samples, x.shape[0], reference.shape[0]);
  const subset = takeRows(x, rng.permutation(x.shape[0]).subarray(0, k));
  const referenceSubset = takeRows(reference, rng.permutation(reference.shape[0]).subarray(0, k));
  // Each metric blocks the event loop; yielding between them lets the activity's heartbeats out.
  await yieldToEventLoop();
  const distances = summarizeDistances(curveDistances(curve, x));
  await yieldToEventLoop();
  const sinkhorn = sinkhornDivergence(subset, referenceSubset, { blur: config.metrics.sinkhornBlur });
  await yieldToEventLoop();
  const coverage = curveCoverage(curve, x, { radius: config.metrics.coverageRadius });
  await yieldToEventLoop();
  return {
    sinkhorn: round(sinkhorn),
    curve_distance_mean: round(distances.mean),
    curve_distance_median: round(distances.median),
    curve_distance_p90: round(distances.p90),
    coverage: round(coverage),
  };
}

function round(x: number): number {
  return Number(x.toPrecision(6));
}

export async function evaluateVector(
  config: VectorCampaignConfig,
  input: EvaluateInput,
): Promise<Untimed<EvaluateOutput>> {
  const store = storeFor(input.store);
  const x = await loadSamples(store, config, input.samples);
  const shards = await Promise.all(input.shards.map((shard) => loadShard(store, config, shard)));
  const y = concatRows(shards.map((s) => s.y));
  const A = concatRows(shards.map((s) => s.A));
  const rng = Rng.derive(config.seed, 'metrics', `lap-${input.lap}`);
  const metrics = await manifoldMetrics(store, config, x, input.clean, input.truth, rng);
  metrics.consistency = round(dataConsistency(x, y, A, config.channel.noiseStd));
  return { metrics };
}
