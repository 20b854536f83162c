/**
 * Crash recovery of the embedded engine, for real: a `diffem run` child process is killed
 * with SIGKILL inside the E-step, inside training, between laps and half-way through an
 * artifact write; `diffem resume` picks it up each time. The finished campaign's artifacts
 * must be byte-identical to an uninterrupted run's, and no finished step may run again.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { runCli, startCli, type CliResult } from './helpers/cli.js';

const CONFIG = `
seed: 3
data: { kind: manifold, dim: 5, count: 1024 }
channel: { kind: projection, obsDim: 2, noiseStd: 0.01 }
model: { hidden: [64, 64], embedDim: 16 }
em: { laps: 2, gaussianIterations: 8, shardSize: 512, concurrency: 2 }
estep: { steps: 96 }
training: { steps: 150, batchSize: 256, checkpointEvery: 30, emaDecay: 0.99 }
prior: { steps: 60, samples: 256, samplerSteps: 16 }
metrics: { samples: 256 }
`;

interface StepRecord {
  step: string;
  status: string;
  executions: Array<{ outcome: string }>;
  output?: { resumedFromStep?: number };
}

let dir: string;
let configFile: string;

async function journal(store: string, id: string): Promise<Map<string, StepRecord>> {
  const root = path.join(store, 'campaigns', id, 'steps');
  const out = new Map<string, StepRecord>();
  if (!existsSync(root)) return out;
  for (const entry of await readdir(root, { recursive: true })) {
    if (!entry.endsWith('.json') || path.basename(entry).startsWith('.')) continue;
    const record = JSON.parse(await readFile(path.join(root, entry), 'utf8')) as StepRecord;
    out.set(record.step, record);
  }
  return out;
}

async function digests(store: string, id: string): Promise<Map<string, string>> {
  const result = await runCli(['history', id, '--store', store, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const laps = JSON.parse(result.stdout) as Array<{ artifacts: Array<{ key: string; sha256: string }> }>;
  const summary = JSON.parse(await readFile(path.join(store, 'campaigns', id, 'summary.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const map = new Map(laps.flatMap((l) => l.artifacts.map((a) => [a.key, a.sha256] as [string, string])));
  for (const value of Object.values(summary)) {
    const ref = value as { key?: string; sha256?: string } | null;
    if (ref && typeof ref.key === 'string' && typeof ref.sha256 === 'string') map.set(ref.key, ref.sha256);
  }
  return map;
}

/** Starts `args` and SIGKILLs the child as soon as `when()` holds; resolves with how it ended. */
async function killWhen(args: string[], when: () => Promise<boolean>): Promise<CliResult> {
  const { child, done } = startCli(args);
  let finished = false;
  void done.then(() => (finished = true));
  while (!finished) {
    if (await when()) {
      child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return done;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'diffem-resume-'));
  configFile = path.join(dir, 'campaign.yaml');
  await writeFile(configFile, CONFIG);
});

test('SIGKILL at four points, resume each time: same artifacts as an uninterrupted run, no finished step re-run', async () => {
  const reference = path.join(dir, 'reference');
  const plain = await runCli(['run', configFile, '--store', reference, '--id', 'c']);
  assert.equal(plain.code, 0, plain.stderr);

  const store = path.join(dir, 'crashed');
  const stepsDir = path.join(store, 'campaigns/c/steps');
  const running = async (step: string) => {
    try {
      return (
        (JSON.parse(await readFile(path.join(stepsDir, `${step}.json`), 'utf8')) as StepRecord).status === 'running'
      );
    } catch {
      return false;
    }
  };
  const kills: Array<{ name: string; args: string[]; when: () => Promise<boolean>; env?: NodeJS.ProcessEnv }> = [
    {
      name: 'inside the E-step',
      args: ['run', configFile, '--store', store, '--id', 'c'],
      when: () => running('lap-001/estep/shard-000'),
    },
    {
      name: 'inside training, after a checkpoint',
      args: ['resume', 'c', '--store', store],
      when: async () => existsSync(path.join(store, 'campaigns/c/lap-001/train/checkpoint.safetensors')),
    },
    {
      name: 'between laps',
      args: ['resume', 'c', '--store', store],
      when: async () => existsSync(path.join(store, 'campaigns/c/laps/lap-001.json')),
    },
  ];

  let before = await journal(store, 'c');
  let interrupted = 0;
  for (const kill of kills) {
    const result = await killWhen(kill.args, kill.when);
    assert.equal(
      result.signal,
      'SIGKILL',
      `${kill.name}: the child was killed (exit ${result.code}, ${result.stderr})`,
    );
    const after = await journal(store, 'c');
    for (const [step, record] of before) {
      if (record.status === 'done')
        assert.deepEqual(
          after.get(step)?.executions,
          record.executions,
          `${kill.name}: finished step ${step} ran again`,
        );
    }
    interrupted += [...after.values()].filter((r) => r.status === 'running').length;
    before = after;
  }
  assert.ok(interrupted >= 2, `the kills landed inside running steps (${interrupted})`);

  // Half-way through writing the final prior's weights, the process kills itself.
  const { done } = startCli(['resume', 'c', '--store', store], {
    DIFFEM_CRASH_WRITING: 'final/prior/weights.safetensors',
  });
  const crashed = await done;
  assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
  const priorDir = path.join(store, 'campaigns/c/final/prior');
  const leftovers = await readdir(priorDir);
  assert.ok(!leftovers.includes('weights.safetensors'), 'no torn artifact under the real key');
  assert.ok(
    leftovers.some((f) => f.startsWith('.') && f.includes('weights.safetensors')),
    `a temp file was left: ${leftovers}`,
  );
  const atCrash = await journal(store, 'c');
  assert.equal(atCrash.get('final/prior')?.status, 'running');

  const finish = await runCli(['resume', 'c', '--store', store]);
  assert.equal(finish.code, 0, finish.stderr);
  const final = await journal(store, 'c');
  for (const [step, record] of atCrash) {
    if (record.status === 'done')
      assert.deepEqual(final.get(step)?.executions, record.executions, `finished step ${step} ran again`);
  }
  for (const [step, record] of final) {
    assert.equal(record.status, 'done', step);
    const outcomes = record.executions.map((e) => e.outcome);
    assert.equal(outcomes.filter((o) => o === 'done').length, 1, `${step} finished exactly once: ${outcomes}`);
    assert.equal(outcomes[outcomes.length - 1], 'done');
  }
  assert.ok((final.get('lap-001/train')?.output?.resumedFromStep ?? 0) > 0, 'training resumed from its checkpoint');
  assert.deepEqual(await digests(store, 'c'), await digests(reference, 'c'));

  const status = await runCli(['status', 'c', '--store', store]);
  assert.match(status.stdout, /campaign c: done/);
  const history = JSON.parse((await runCli(['history', 'c', '--store', store, '--json'])).stdout) as Array<{
    lap: number;
    attempts: number;
    failures: number;
  }>;
  assert.ok(
    history.some((h) => h.failures > 0),
    'the history shows the interrupted attempts',
  );
});
