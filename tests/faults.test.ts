/**
 * Resource faults on a real campaign through the CLI. A full disk (the store's fault hook
 * fails every write after the 30th with ENOSPC): the campaign stops with an error naming
 * ENOSPC and the way to continue, keeps every finished step and leaves no temporary file;
 * resumed once there is space, it writes the bytes an uninterrupted run writes. SIGTERM
 * inside training: the process finishes the write under way, records the campaign as
 * stopped at that step and the attempt as interrupted, exits 143; resume continues it to
 * the same bytes.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { runCli, startCli } from './helpers/cli.js';
import { campaignDigests } from './helpers/digests.js';

const CONFIG = 'examples/manifold-tiny.yaml';
let dir: string;
let reference: Map<string, string>;

interface Step {
  step: string;
  status: string;
  executions: Array<{ outcome: string }>;
}

async function journal(store: string): Promise<Step[]> {
  const root = path.join(store, 'campaigns/t/steps');
  const out: Step[] = [];
  for (const entry of await readdir(root, { recursive: true })) {
    if (entry.endsWith('.json') && !path.basename(entry).startsWith('.')) {
      out.push(JSON.parse(await readFile(path.join(root, entry), 'utf8')) as Step);
    }
  }
  return out;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-faults-'));
  const store = path.join(dir, 'reference');
  const run = await runCli(['run', CONFIG, '--store', store, '--id', 't']);
  assert.equal(run.code, 0, run.stderr);
  reference = await campaignDigests(store, 't');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a full disk stops the campaign with a clear error, keeps finished steps, and resume completes it', async () => {
  const store = path.join(dir, 'full');
  const full = await runCli(['run', CONFIG, '--store', store, '--id', 't'], { DIFFEM_FAULT_ENOSPC_AFTER: '30' });
  assert.equal(full.code, 1);
  assert.match(full.stderr, /ENOSPC: no space left on device/);
  assert.match(full.stderr, /the store's disk is full; every finished step is kept: free space, then diffem resume t/);
  const done = (await journal(store)).filter((s) => s.status === 'done').map((s) => s.step);
  assert.ok(done.length >= 3, `finished steps kept: ${done.join(', ')}`);
  const leftovers = (await readdir(store, { recursive: true })).filter((f) => path.basename(f).startsWith('.~tmp-'));
  assert.deepEqual(leftovers, []);

  const resumed = await runCli(['resume', 't', '--store', store]);
  assert.equal(resumed.code, 0, resumed.stderr);
  for (const step of done) assert.match(resumed.stderr, new RegExp(`${step}.*already done \\(reused\\)`));
  assert.deepEqual(await campaignDigests(store, 't'), reference);
});

test('SIGTERM finishes the write under way, records where it stopped, exits non-zero; resume continues', async () => {
  const store = path.join(dir, 'term');
  const { child, done } = startCli(['run', CONFIG, '--store', store, '--id', 't']);
  // Inside lap 0's training, once a checkpoint exists: the step has work worth keeping.
  const checkpoint = path.join(store, 'campaigns/t/lap-000/train/checkpoint.safetensors');
  const started = Date.now();
  while (!existsSync(checkpoint)) {
    assert.ok(Date.now() - started < 180_000, 'training checkpointed in time');
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGTERM');
  const stopped = await done;
  assert.equal(stopped.code, 143, stopped.stderr);
  assert.match(stopped.stderr, /campaign 't' stopped by SIGTERM at step lap-000\/\S+; continue with: diffem resume t/);

  const status = JSON.parse(await readFile(path.join(store, 'campaigns/t/status.json'), 'utf8')) as {
    status: string;
    step: string;
  };
  assert.equal(status.status, 'stopped');
  assert.match(status.step, /^lap-000\//);
  const steps = await journal(store);
  const interrupted = steps.find((s) => s.step === status.step);
  assert.ok(interrupted, `the journal has the step it stopped at (${status.step})`);
  assert.notEqual(interrupted.status, 'done');
  assert.equal(interrupted.executions.at(-1)?.outcome, 'interrupted');
  const leftovers = (await readdir(store, { recursive: true })).filter((f) => path.basename(f).startsWith('.~tmp-'));
  assert.deepEqual(leftovers, [], 'no write was cut short');

  const resumed = await runCli(['resume', 't', '--store', store]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(await campaignDigests(store, 't'), reference);
});
