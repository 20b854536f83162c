/**
 * What a pixel-mask campaign's reconstructions look like where the mask hid the pixel, beside
 * where it showed it: the root-mean-square error against the hidden truth, and the share of
 * grey pixels (|v| < 1 on the [-2, 2] scale; MNIST strokes are nearly binary). A posterior
 * sample should be as crisp where it invents a pixel as where it copies one; greyer invented
 * pixels on a random per-pixel mask are a high-frequency texture that a prior trained on the
 * reconstructions learns as part of the digits (docs: README, "The final prior").
 *
 *   node dist/bench/mask-texture.js --store DIR --id ID
 *
 * Prints one row per stage with reconstructions (lap-001 ... final), with the lap's FID.
 */
import { parseArgs } from 'node:util';
import type { NDArray } from '../models/ndarray.js';
import { storeFor } from '../store/open.js';
import type { ArtifactStore } from '../store/store.js';
import { getTensors } from '../store/tensors.js';
import { campaignKeys, type Stage } from '../workflows/keys.js';

const GREY = 1;

interface Tally {
  pixels: number;
  squaredError: number;
  grey: number;
  truthGrey: number;
}

async function tensorsAt(store: ArtifactStore, key: string): Promise<Record<string, NDArray> | null> {
  const ref = await store.head(key);
  return ref ? (await getTensors(store, ref)).tensors : null;
}

function need<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new Error(`mask-texture: ${what} is missing`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { store: { type: 'string' }, id: { type: 'string' } } });
  if (!values.store || !values.id) throw new Error('usage: mask-texture --store DIR --id ID');
  const store = storeFor(values.store);
  const id = values.id;
  const truth = need((await tensorsAt(store, campaignKeys.clean(id)))?.latent, `${campaignKeys.clean(id)} 'latent'`);
  const masks: NDArray[] = [];
  for (let index = 0; ; index++) {
    const shard = await tensorsAt(store, campaignKeys.dataShard(id, index));
    if (!shard) break;
    masks.push(need(shard.masks, `${campaignKeys.dataShard(id, index)} 'masks' (a pixel-mask campaign)`));
  }
  if (masks.length === 0) throw new Error(`mask-texture: campaign '${id}' has no data shards`);

  process.stdout.write('| stage | FID | RMSE shown | RMSE hidden | grey shown | grey hidden | grey in the truth |\n');
  process.stdout.write('|---|---|---|---|---|---|---|\n');
  const stages: Stage[] = [];
  for (let lap = 1; await store.head(campaignKeys.posteriorShard(id, lap, 0)); lap++) stages.push(lap);
  if (await store.head(campaignKeys.posteriorShard(id, 'final', 0))) stages.push('final');
  for (const stage of stages) {
    const tally = { shown: newTally(), hidden: newTally() };
    let offset = 0;
    for (let index = 0; index < masks.length; index++) {
      const key = campaignKeys.posteriorShard(id, stage, index);
      const x = need((await tensorsAt(store, key))?.x, `${key} 'x'`);
      const mask = masks[index];
      if (mask.data.length !== x.data.length)
        throw new Error(`${key}: ${x.data.length} values for a mask of ${mask.data.length}`);
      for (let k = 0; k < x.data.length; k++) {
        const t = mask.data[k] > 0.5 ? tally.shown : tally.hidden;
        const v = x.data[k];
        const truthValue = truth.data[offset + k];
        t.pixels++;
        t.squaredError += (v - truthValue) ** 2;
        if (Math.abs(v) < GREY) t.grey++;
        if (Math.abs(truthValue) < GREY) t.truthGrey++;
      }
      offset += x.data.length;
    }
    // A lap's FID is in its record; the final E-step's in the summary.
    const record = await store.head(stage === 'final' ? campaignKeys.summary(id) : campaignKeys.lapRecord(id, stage));
    let fid = '-';
    if (record) {
      const json = JSON.parse(new TextDecoder().decode(await store.getVerified(record))) as {
        metrics?: { fid?: number };
        lastMetrics?: { fid?: number };
      };
      fid = (stage === 'final' ? json.lastMetrics : json.metrics)?.fid?.toFixed(1) ?? '-';
    }
    const rmse = (t: Tally): string => Math.sqrt(t.squaredError / t.pixels).toFixed(3);
    const share = (n: number, t: Tally): string => `${((100 * n) / t.pixels).toFixed(1)} %`;
    process.stdout.write(
      `| ${stage === 'final' ? 'final' : `lap ${stage}`} | ${fid} | ${rmse(tally.shown)} | ${rmse(tally.hidden)} | ` +
        `${share(tally.shown.grey, tally.shown)} | ${share(tally.hidden.grey, tally.hidden)} | ` +
        `${share(tally.hidden.truthGrey + tally.shown.truthGrey, { ...tally.hidden, pixels: tally.hidden.pixels + tally.shown.pixels })} |\n`,
    );
  }
}

function newTally(): Tally {
  return { pixels: 0, squaredError: 0, grey: 0, truthGrey: 0 };
}

await main();
