/**
 * The audit trail and the figures: one JSON record per lap (`campaigns/{id}/laps/lap-k.json`),
 * the campaign summary, and the PNG of reconstructions against the true curve.
 */
import { curvePoint, type CurveParams } from '../models/manifold.js';
import { ndarray } from '../models/ndarray.js';
import { lapName } from '../workflows/campaign.js';
import { isImageConfig, vectorConfig } from '../workflows/config.js';
import type { ArtifactRef, FigureInput, FigureOutput, FinishInput, RecordLapInput } from '../workflows/types.js';
import { activityContext } from './context.js';
import { asActivity } from './errors.js';
import { renderImageFigures } from './images/records.js';
import { scatterPng } from './figures/scatter.js';
import { campaignKey, getTensors, storeFor, tensorOf } from './io.js';
import { loadSamples } from './shards.js';
import { getJson, putJson } from './store/store.js';

export function lapRecordKey(campaignId: string, lap: number): string {
  return campaignKey(campaignId, 'laps', `${lapName(lap)}.json`);
}

export function recordLap(input: RecordLapInput): Promise<ArtifactRef> {
  return asActivity(() =>
    putJson(storeFor(input.store), lapRecordKey(input.campaignId, input.record.lap), input.record),
  );
}

export function finishCampaign(input: FinishInput): Promise<ArtifactRef> {
  return asActivity(() => putJson(storeFor(input.store), campaignKey(input.campaignId, 'summary.json'), input.summary));
}

export function renderFigures(input: FigureInput): Promise<FigureOutput> {
  if (isImageConfig(input.config)) return asActivity(() => renderImageFigures(input));
  return asActivity(async () => {
    const started = performance.now();
    const { campaignId } = input;
    const config = vectorConfig(input.config);
    const store = storeFor(input.store);
    const curve = await getJson<CurveParams>(store, input.truth.key);
    const grid = 2000;
    const line = ndarray([grid, config.data.dim]);
    for (let i = 0; i < grid; i++) line.data.set(curvePoint(curve, i / (grid - 1)), i * config.data.dim);
    const rows = [];
    for (const lap of input.laps) {
      const label =
        lap.lap === 0
          ? 'lap 0 (Gaussian initialisation)'
          : lap.lap > config.em.laps
            ? `after lap ${config.em.laps} (final E-step)`
            : `lap ${lap.lap}`;
      rows.push({ label, points: await loadSamples(store, config, lap.samples) });
    }
    if (input.prior) {
      rows.push({
        label: 'final prior samples',
        points: tensorOf((await getTensors(store, input.prior)).tensors, 'x', input.prior.key, [config.data.dim]),
      });
    }
    const png = await scatterPng({
      title: `${campaignId}: ${config.method} reconstructions vs the true curve (red)`,
      curve: line,
      rows,
    });
    const figure = await store.put(campaignKey(campaignId, 'figures', 'reconstructions.png'), png);
    return { figures: [figure], seconds: (performance.now() - started) / 1000, attempt: activityContext().attempt };
  });
}
