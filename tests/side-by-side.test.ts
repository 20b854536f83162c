/**
 * Campaigns side by side in one store: three tiny campaigns run at once (two of them with one
 * config) while `status` and `history` read all three in a loop. Every read must parse or say
 * the campaign does not exist yet (never a half-written record), the two same-config campaigns
 * must write the same bytes (neither corrupted the other), a second process starting one of
 * them at the same moment and a later `resume` of a running one are refused by name, and a
 * reader SIGKILLed mid-read leaves the store exactly as it was.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';

import { spawn } from 'node:child_process';
import { runCli, startCli, type CliResult } from './helpers/cli.js';
import { campaignDigests, withoutId } from './helpers/digests.js';

let dir: string;
let store: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-side-'));
  store = path.join(dir, 'store');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function snapshot(root: string): Promise<string> {
  const lines: string[] = [];
  for (const entry of (await readdir(root, { recursive: true, withFileTypes: true })).sort((a, b) =>
    path.join(a.parentPath, a.name).localeCompare(path.join(b.parentPath, b.name)),
  )) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    lines.push(
      `${path.relative(root, file)} ${createHash('sha256')
        .update(await readFile(file))
        .digest('hex')}`,
    );
  }
  return lines.join('\n');
}

test('three campaigns at once, read all along: no torn reads, no cross-talk, one owner each', async () => {
  const tiny = await readFile(new URL('../../examples/manifold-tiny.yaml', import.meta.url), 'utf8');
  const configA = path.join(dir, 'a.yaml');
  const configC = path.join(dir, 'c.yaml');
  await writeFile(configA, tiny);
  await writeFile(configC, tiny.replace(/^seed: \d+/m, 'seed: 8'));

  const runs = new Map<string, Promise<CliResult>>();
  for (const [id, config] of [
    ['a', configA],
    ['b', configA],
    ['c', configC],
  ]) {
    runs.set(id, startCli(['run', config, '--store', store, '--id', id]).done);
  }
  // A second process on campaign a, started at the same moment as the first.
  const rival = startCli(['run', configA, '--store', store, '--id', 'a']).done;
  let finished = false;
  const all = Promise.all([...runs.values(), rival]).then((results) => {
    finished = true;
    return results;
  });

  let reads = 0;
  let lateResume: CliResult | undefined;
  while (!finished) {
    for (const id of ['a', 'b', 'c']) {
      for (const args of [
        ['status', id, '--store', store, '--json'],
        ['history', id, '--store', store, '--json'],
      ]) {
        const result = await runCli(args);
        if (result.code === 0) {
          JSON.parse(result.stdout);
          reads++;
        } else {
          assert.match(result.stderr, /no campaign/, `${args.join(' ')}: ${result.stderr}`);
        }
      }
    }
    if (!lateResume && !finished) {
      const status = await runCli(['status', 'b', '--store', store, '--json']);
      if (status.code === 0 && (JSON.parse(status.stdout) as { status: string }).status === 'running') {
        lateResume = await runCli(['resume', 'b', '--store', store]);
      }
    }
  }
  const [a, b, c, second] = await all;
  assert.ok(reads >= 6, `readers got ${reads} whole answers while the campaigns ran`);

  // Exactly one of the two processes started on campaign a ran it; the other was refused by name.
  const outcomes = [a, second].map((r) => r.code).sort();
  assert.deepEqual(outcomes, [0, 1], `${a.stderr}\n---\n${second.stderr}`);
  const refused = a.code === 1 ? a : second;
  assert.match(refused.stderr, /campaign 'a' is being run by process \d+ on this machine/);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(c.code, 0, c.stderr);
  assert.ok(lateResume, 'campaign b was seen running');
  assert.equal(lateResume.code, 1);
  assert.match(
    lateResume.stderr,
    /campaign 'b' is being run by process \d+ on this machine; wait for it or stop it first/,
  );

  const digests = {
    a: withoutId(await campaignDigests(store, 'a'), 'a'),
    b: withoutId(await campaignDigests(store, 'b'), 'b'),
    c: withoutId(await campaignDigests(store, 'c'), 'c'),
  };
  assert.ok(digests.a.size > 10);
  // Weights files name their campaign in their metadata and figures in their titles; every
  // other artifact is id-free.
  const idFree = (m: Map<string, string>) =>
    new Map([...m].filter(([key]) => !key.endsWith('/weights.safetensors') && !key.includes('/figures/')));
  assert.ok(idFree(digests.a).size >= 10);
  assert.deepEqual(
    idFree(digests.a),
    idFree(digests.b),
    'two campaigns of one config in one store wrote the same bytes',
  );
  assert.notDeepEqual(digests.a, digests.c);
  // And each recorded digest is what is on disk now: nobody overwrote anybody.
  for (const id of ['a', 'b', 'c'] as const) {
    for (const [key, sha] of await campaignDigests(store, id)) {
      const bytes = await readFile(path.join(store, key));
      assert.equal(createHash('sha256').update(bytes).digest('hex'), sha, key);
    }
  }
});

test('readers SIGKILLed at seeded moments mid-read change nothing in the store', async () => {
  const before = await snapshot(store);
  assert.ok(before.length > 0);
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('status', 'history'),
      fc.constantFrom('a', 'b', 'c'),
      fc.integer({ min: 0, max: 600 }),
      async (command, id, delayMs) => {
        const { child, done } = startCli([command, id, '--store', store, '--json']);
        await new Promise((r) => setTimeout(r, delayMs));
        child.kill('SIGKILL');
        const result = await done;
        if (result.code !== null) assert.equal(result.code, 0, result.stderr);
      },
    ),
    { seed: 21, numRuns: 8 },
  );
  assert.equal(await snapshot(store), before);
});

test('processes claiming one campaign at the same instant: exactly one wins, the others are refused by name', async () => {
  const records = new URL('../engines/records.js', import.meta.url).href;
  const fsStore = new URL('../store/fs.js', import.meta.url).href;
  const lockStore = path.join(dir, 'lock-store');
  // Each claimant holds its claim for a while after winning, as a running campaign would.
  const script = `
    const { acquireCampaign } = await import(${JSON.stringify(records)});
    const { FsArtifactStore } = await import(${JSON.stringify(fsStore)});
    try {
      await acquireCampaign(new FsArtifactStore(${JSON.stringify(lockStore)}), 'x');
      console.log('won');
      await new Promise((r) => setTimeout(r, 3000));
    } catch (error) {
      console.log(error.name + ': ' + error.message);
    }`;
  const claimants = Array.from({ length: 3 }, () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise<string>((resolve) => child.on('close', () => resolve(out.trim())));
  });
  const outcomes = await Promise.all(claimants);
  assert.equal(outcomes.filter((o) => o === 'won').length, 1, outcomes.join('\n'));
  for (const o of outcomes.filter((o) => o !== 'won')) {
    assert.match(o, /^CampaignBusyError: campaign 'x' is being run by process \d+ on this machine/);
  }
});
