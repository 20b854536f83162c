/**
 * The embedded engine's overhead per step against the step's own compute.
 *
 * 1. Synthetic: 200 steps of an activity that does nothing, through the engine's host (a
 *    journal read, a `running` record written and fsynced, the `done` record written and
 *    fsynced), then the same 200 calls again as a resumed run replays them (journal reads).
 * 2. Real: the tiny manifold campaign; per step, wall time in the engine minus the
 *    activity's own measured seconds.
 * Prints one JSON line. Usage: node dist/bench/engine.js
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { readFile } from 'node:fs/promises';
import { storeFor } from '../store/open.js';
import { localHost, runLocalCampaign } from '../engines/local/engine.js';
import { listSteps } from '../engines/records.js';
import { silentProgress } from '../engines/local/progress.js';
import { parseCampaignConfig } from '../workflows/config.js';
import type { CampaignActivities, RecordLapInput } from '../workflows/types.js';

const dir = await mkdtemp(path.join(tmpdir(), 'diffem-engine-bench-'));
const config = parseCampaignConfig(
  parse(await readFile(new URL('../../examples/manifold-tiny.yaml', import.meta.url), 'utf8')),
  'manifold-tiny.yaml',
);

async function synthetic(): Promise<{ fresh_ms: number; replay_ms: number }> {
  const store = storeFor(path.join(dir, 'synthetic'));
  const noop = {
    recordLap: async () => ({ key: 'x', sha256: '0'.repeat(64), bytes: 0 }),
  } as unknown as CampaignActivities;
  const options = { progress: silentProgress, maxAttempts: 1, retryDelayMs: 0 };
  const input: RecordLapInput = {
    store: store.uri,
    campaignId: 'bench',
    config,
    record: {
      lap: 0,
      metrics: {},
      artifacts: [],
      seconds: 0,
      seeds: {},
      steps: [],
      attempts: 1,
      failures: 0,
      evaluations: 0,
    },
  };
  const n = 200;
  const time = async () => {
    const host = localHost(store, 'bench', noop, options);
    const start = performance.now();
    for (let i = 0; i < n; i++) await host.call('recordLap', `bench/step-${i}`, input);
    return (performance.now() - start) / n;
  };
  return { fresh_ms: Number((await time()).toFixed(3)), replay_ms: Number((await time()).toFixed(3)) };
}

async function real(): Promise<{
  steps: number;
  overhead_ms_median: number;
  compute_ms_median: number;
  overhead_fraction: number;
}> {
  const uri = path.join(dir, 'real');
  await runLocalCampaign({ store: uri, campaignId: 'tiny', config });
  const steps = await listSteps(storeFor(uri), 'tiny');
  const overheads: number[] = [];
  const computes: number[] = [];
  for (const s of steps) {
    const e = s.executions[s.executions.length - 1];
    const wall = Date.parse(e.endedAt ?? e.startedAt) - Date.parse(e.startedAt);
    const compute = 1000 * ((s.output as { seconds?: number } | undefined)?.seconds ?? 0);
    computes.push(compute);
    overheads.push(Math.max(0, wall - compute));
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const total = (v: number[]) => v.reduce((a, b) => a + b, 0);
  return {
    steps: steps.length,
    overhead_ms_median: Number(median(overheads).toFixed(2)),
    compute_ms_median: Number(median(computes).toFixed(2)),
    overhead_fraction: Number((total(overheads) / (total(overheads) + total(computes))).toFixed(4)),
  };
}

console.log(
  JSON.stringify({
    engine: 'embedded',
    store: 'filesystem',
    synthetic: await synthetic(),
    tiny_campaign: await real(),
  }),
);
await rm(dir, { recursive: true, force: true });
