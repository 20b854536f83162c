/**
 * Pause, unpause, stop and progress on the embedded engine, through the real CLI against a
 * real running campaign: a paused campaign starts no step until it is unpaused; a stopped one
 * ends after the lap in progress, runs its final stage on the laps done, and says `stopped`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCli } from './helpers/cli.js';

interface ProgressView {
  status: string;
  paused: boolean;
  stopRequested: boolean;
  lapsDone: number | null;
  laps: number;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function progress(store: string, id: string): Promise<ProgressView> {
  const result = await runCli(['progress', id, '--store', store, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as ProgressView;
}

async function journalSteps(store: string, id: string): Promise<number> {
  const dir = path.join(store, 'campaigns', id, 'steps');
  if (!existsSync(dir)) return 0;
  const walk = async (d: string): Promise<number> =>
    (
      await Promise.all(
        (await readdir(d, { withFileTypes: true })).map((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : 1)),
      )
    ).reduce((a, b) => a + b, 0);
  return walk(dir);
}

test('pause holds a running campaign before its next step; unpause lets it finish', async () => {
  const store = path.join(await mkdtemp(path.join(tmpdir(), 'diffem-pause-')), 'store');
  const run = startCli(['run', 'examples/manifold-tiny.yaml', '--store', store, '--id', 'tiny']);
  await waitFor('the manifest', async () => existsSync(path.join(store, 'campaigns', 'tiny', 'campaign.json')));
  const paused = await runCli(['pause', 'tiny', '--store', store]);
  assert.equal(paused.code, 0, paused.stderr);
  assert.match(paused.stdout, /pause requested/);
  await waitFor('status paused', async () => (await progress(store, 'tiny')).status === 'paused');
  const held = await journalSteps(store, 'tiny');
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(await journalSteps(store, 'tiny'), held, 'no step may start while paused');
  const view = await progress(store, 'tiny');
  assert.equal(view.paused, true);
  assert.match((await runCli(['progress', 'tiny', '--store', store])).stdout, /tiny: paused/);

  assert.equal((await runCli(['unpause', 'tiny', '--store', store])).code, 0);
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /paused; `diffem unpause tiny/);
  const done = await progress(store, 'tiny');
  assert.equal(done.status, 'done');
  assert.equal(done.lapsDone, 2);
});

test('stop ends a campaign after the lap in progress; status says stopped', async () => {
  const store = path.join(await mkdtemp(path.join(tmpdir(), 'diffem-stop-')), 'store');
  const run = startCli(['run', 'examples/manifold-tiny.yaml', '--store', store, '--id', 'tiny']);
  await waitFor('the manifest', async () => existsSync(path.join(store, 'campaigns', 'tiny', 'campaign.json')));
  const stopped = await runCli(['stop', 'tiny', '--store', store]);
  assert.equal(stopped.code, 0, stopped.stderr);
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
  const view = await progress(store, 'tiny');
  assert.equal(view.status, 'stopped');
  assert.ok(
    view.lapsDone !== null && view.lapsDone < view.laps,
    `stopped early: ${view.lapsDone} of ${view.laps} laps`,
  );
  assert.ok(existsSync(path.join(store, 'campaigns', 'tiny', 'summary.json')), 'the final stage ran');
  const status = await runCli(['status', 'tiny', '--store', store]);
  assert.match(status.stdout, /tiny: stopped/);
});

test('control commands name a missing campaign', async () => {
  const store = await mkdtemp(path.join(tmpdir(), 'diffem-ctl-'));
  const result = await runCli(['pause', 'nope', '--store', store]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /no campaign 'nope'/);
});

test('a pause in the last lap is refused, since no lap boundary is left to hold at', async () => {
  const store = path.join(await mkdtemp(path.join(tmpdir(), 'diffem-last-lap-')), 'store');
  const run = startCli(['run', 'examples/manifold-tiny.yaml', '--store', store, '--id', 'tiny']);
  // Laps run 0..2: once lap 1 is recorded, lap 2 (the last) or the final stage is in progress.
  const lapOne = path.join(store, 'campaigns', 'tiny', 'laps', 'lap-001.json');
  await waitFor('lap 1 recorded', async () => existsSync(lapOne));
  const refused = await runCli(['pause', 'tiny', '--store', store]);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(
    refused.stderr,
    /campaign tiny is in its (last lap \(2 of 2\): 'pause' acts at the next lap boundary and there is none left|final stage: 'pause' no longer applies)/,
  );
  assert.equal((await progress(store, 'tiny')).paused, false, 'the refused pause was recorded');
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal((await progress(store, 'tiny')).status, 'done');
});
