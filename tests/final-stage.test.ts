/**
 * A campaign stopped before its last lap still ends with a final stage, and that stage is
 * labelled and stored as the final one: its E-step under `final/`, nothing written under the
 * lap that never ran, the summary and the report counting the laps actually done.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { createActivities } from '../activities/index.js';
import { localHost } from '../engines/local/engine.js';
import { silentProgress } from '../engines/local/progress.js';
import { openCampaign } from '../engines/records.js';
import { loadReportData } from '../cli/report-data.js';
import { storeFor } from '../store/open.js';
import { runCampaign } from '../workflows/campaign.js';
import { parseCampaignConfig } from '../workflows/config.js';
import { REPO } from './helpers/cli.js';

test('a campaign stopped after lap 1 of 2 writes its final stage under final/, not as lap 2', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'diffem-final-'));
  const document = parse(await readFile(path.join(REPO, 'examples', 'manifold-tiny.yaml'), 'utf8')) as {
    em: { laps: number };
  };
  assert.equal(document.em.laps, 2, 'the tiny example runs 2 laps; this test stops it after 1');
  const config = parseCampaignConfig(document, 'manifold-tiny.yaml');
  const store = storeFor(dir);
  const campaignId = 'stopped';
  await openCampaign(store, campaignId, config, 'local');
  const host = localHost(store, campaignId, createActivities(), {
    progress: silentProgress,
    maxAttempts: 1,
    retryDelayMs: 0,
  });
  const summary = await runCampaign(
    { ...host, beforeLap: async (state) => (state.nextLap > 1 ? 'stop' : 'continue') },
    { store: store.uri, campaignId, config },
  );

  assert.equal(summary.laps, 1);
  const keys = await store.list(`campaigns/${campaignId}/`);
  assert.deepEqual(
    keys.filter((k) => k.includes('/lap-002')),
    [],
    'nothing may be stored as lap 2: it never ran',
  );
  const finalSamples = keys.filter((k) => k.startsWith(`campaigns/${campaignId}/final/estep/`));
  assert.equal(finalSamples.length, 2, 'one final E-step artifact per shard');

  const report = await loadReportData(store, campaignId);
  const run = report.runs[0];
  assert.deepEqual(
    run.laps.map((l) => [l.lap, l.label]),
    [
      [0, 'lap 0'],
      [1, 'lap 1'],
      [2, 'final'],
    ],
  );
});
