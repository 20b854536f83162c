/**
 * `npm run soak`: the resume path under many faults, bounded in count and time (not in CI).
 *
 *   node dist/tests/soak.js [--kills 50] [--seed N] [--backend fs,s3,temporal] [--max-minutes 90] [--fuzz-scale 10]
 *
 * Each kill is one trial: the tiny campaign starts in a fresh store and is SIGKILLed at a
 * seeded random moment, either after a random delay within an uninterrupted run's duration
 * or half-way through its k-th store write (the store's DIFFEM_CRASH_AT_PUT hook, filesystem
 * only); `diffem resume` then finishes it and every artifact digest is compared with the
 * uninterrupted run's. One line per kill names the last write under way (the fault hook's
 * put log) and the outcome; the summary reads `N kills, N resumed, N identical`.
 *
 * On S3 the same trials run against a real s3rver endpoint behind the flaky proxy (every 7th
 * request fails), with time-based kills. On Temporal (tests/helpers/temporal-soak.ts) each trial
 * SIGKILLs the worker or the dev server instead, and the workflow must complete by itself.
 * The default backends are fs,s3; `--backend fs,s3,temporal` adds Temporal (it builds the
 * pinned server CLI with tools/temporal/temporal.sh unless DIFFEM_TEMPORAL_CLI names one).
 * With --fuzz-scale K the parser fuzz suite then runs K times longer under the same seed.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { Rng } from '../models/rng.js';
import { REPO, runCli, startCli } from './helpers/cli.js';
import { campaignDigests } from './helpers/digests.js';
import { startFlakyProxy, startS3 } from './helpers/s3.js';
import { soakTemporal } from './helpers/temporal-soak.js';

const CONFIG = 'examples/manifold-tiny.yaml';

interface Backend {
  name: string;
  /** A fresh store URI for trial `i`. */
  store(i: number): Promise<string>;
  env: NodeJS.ProcessEnv;
  /** Whether the store's write hooks (put log, crash at put k) apply. */
  writeHooks: boolean;
  stop(): Promise<void>;
}

interface Tally {
  kills: number;
  resumed: number;
  identical: number;
}

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '50' },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
    backend: { type: 'string', default: 'fs,s3' },
    'max-minutes': { type: 'string', default: '90' },
    'fuzz-scale': { type: 'string', default: '0' },
  },
});
const KILLS = Number(values.kills);
const SEED = Number(values.seed);
const DEADLINE = Date.now() + Number(values['max-minutes']) * 60_000;

function same(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

async function lastPut(log: string): Promise<string> {
  if (!existsSync(log)) return 'before any write';
  const lines = (await readFile(log, 'utf8')).trim().split('\n');
  const [n, key] = (lines.at(-1) ?? '').split(' ');
  return key ? `last write started: #${n} ${key}` : 'before any write';
}

async function soakBackend(backend: Backend, rng: Rng): Promise<Tally> {
  const work = await mkdtemp(path.join(tmpdir(), `diffem-soak-${backend.name}-`));
  const tally: Tally = { kills: 0, resumed: 0, identical: 0 };
  try {
    const reference = await backend.store(0);
    const refLog = path.join(work, 'reference.log');
    const started = performance.now();
    const plain = await runCli(['run', CONFIG, '--store', reference, '--id', 't'], {
      ...backend.env,
      DIFFEM_PUT_LOG: refLog,
    });
    if (plain.code !== 0) throw new Error(`uninterrupted run failed: ${plain.stderr}`);
    const seconds = (performance.now() - started) / 1000;
    const expected = await campaignDigests(reference, 't', backend.env);
    const puts = backend.writeHooks ? (await readFile(refLog, 'utf8')).trim().split('\n').length : 0;
    console.log(
      `[${backend.name}] uninterrupted run: ${seconds.toFixed(1)} s, ${expected.size} artifacts` +
        (puts ? `, ${puts} store writes` : ''),
    );

    // A trial whose run finishes before its kill moment is not a kill: draw another, up to 2N trials.
    for (let i = 1; tally.kills < KILLS && i <= 2 * KILLS; i++) {
      if (Date.now() > DEADLINE) {
        console.log(`[${backend.name}] time limit reached after ${tally.kills} kills`);
        break;
      }
      const trial = rng.fork('trial', i);
      const store = await backend.store(i);
      const log = path.join(work, `trial-${i}.log`);
      const inWrite = backend.writeHooks && trial.uniform() < 0.5;
      const env: NodeJS.ProcessEnv = { ...backend.env, DIFFEM_PUT_LOG: log };
      let moment: string;
      let delayMs = 0;
      if (inWrite) {
        const k = 1 + Math.floor(trial.uniform() * puts);
        env.DIFFEM_CRASH_AT_PUT = String(k);
        moment = `half-way through write ${k}`;
      } else {
        delayMs = Math.round(trial.uniform() * 0.8 * seconds * 1000);
        moment = `at ${(delayMs / 1000).toFixed(2)} s`;
      }
      const { child, done } = startCli(['run', CONFIG, '--store', store, '--id', 't'], env);
      const timer = inWrite ? undefined : setTimeout(() => child.kill('SIGKILL'), delayMs);
      const ended = await done;
      clearTimeout(timer);
      if (ended.signal !== 'SIGKILL') {
        console.log(
          `[${backend.name}] trial ${i}: finished before the kill ${moment} (code ${ended.code}); not counted`,
        );
        continue;
      }
      tally.kills++;
      const where = backend.writeHooks ? await lastPut(log) : '';
      let resumed = await runCli(['resume', 't', '--store', store], backend.env);
      // Killed before the manifest was written, the campaign does not exist yet: `run` again is the recovery.
      const before = /no campaign 't'/.test(resumed.stderr);
      if (before) resumed = await runCli(['run', CONFIG, '--store', store, '--id', 't'], backend.env);
      let verdict: string;
      if (resumed.code !== 0) verdict = `resume FAILED: ${resumed.stderr.trim().split('\n').at(-1)}`;
      else {
        tally.resumed++;
        const identical = same(await campaignDigests(store, 't', backend.env), expected);
        if (identical) tally.identical++;
        verdict = `${before ? 'killed before the campaign existed, run again' : 'resumed'}, ${identical ? 'identical' : 'DIGESTS DIFFER'}`;
      }
      console.log(
        `[${backend.name}] kill ${tally.kills}: SIGKILL ${moment}${where ? ` (${where})` : ''} -> ${verdict}`,
      );
      if (!backend.name.startsWith('s3')) await rm(store, { recursive: true, force: true });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
    await backend.stop();
  }
  console.log(`[${backend.name}] ${tally.kills} kills, ${tally.resumed} resumed, ${tally.identical} identical`);
  return tally;
}

async function fsBackend(): Promise<Backend> {
  const root = await mkdtemp(path.join(tmpdir(), 'diffem-soak-stores-'));
  return {
    name: 'fs',
    store: async (i) => path.join(root, `store-${i}`),
    env: {},
    writeHooks: true,
    stop: () => rm(root, { recursive: true, force: true }),
  };
}

async function s3Backend(): Promise<Backend> {
  const s3 = await startS3({ bucket: 'soak' });
  const proxy = await startFlakyProxy(s3.endpoint, { failEvery: 7 });
  return {
    name: 's3',
    store: async (i) => `s3://soak/trial-${i}`,
    env: { ...s3.env, DIFFEM_S3_ENDPOINT: proxy.endpoint },
    writeHooks: false,
    stop: async () => {
      console.log(`[s3] the flaky proxy injected ${proxy.failures()} failures in ${proxy.requests()} requests`);
      await proxy.stop();
      await s3.stop();
    },
  };
}

async function fuzzLonger(scale: number): Promise<boolean> {
  console.log(`[fuzz] parser fuzz suite, ${scale}x the runs, seed ${SEED}`);
  const child = spawn(process.execPath, ['--test', path.join(REPO, 'dist/tests/fuzz-parsers.test.js')], {
    env: { ...process.env, FUZZ_SEED: String(SEED), FUZZ_SCALE: String(scale) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  console.log(`[fuzz] ${out.match(/^# (pass|fail) \d+$/gm)?.join(', ') ?? 'no result'}`);
  return code === 0;
}

async function main(): Promise<void> {
  console.log(`soak: seed ${SEED}, ${KILLS} kills per backend, backends ${values.backend}`);
  const rng = Rng.derive(SEED, 'soak');
  const totals: Array<[string, Tally]> = [];
  for (const name of (values.backend ?? '').split(',').filter(Boolean)) {
    if (name === 'fs') totals.push(['fs', await soakBackend(await fsBackend(), rng.fork('fs'))]);
    else if (name === 's3') totals.push(['s3', await soakBackend(await s3Backend(), rng.fork('s3'))]);
    else if (name === 'temporal') {
      const options = { config: CONFIG, kills: KILLS, rng: rng.fork('temporal'), deadline: DEADLINE };
      totals.push(['temporal', await soakTemporal(options)]);
    } else throw new Error(`--backend: unknown backend '${name}' (fs, s3, temporal)`);
  }
  let ok = true;
  if (Number(values['fuzz-scale']) > 0) ok = (await fuzzLonger(Number(values['fuzz-scale']))) && ok;
  console.log(`soak seed ${SEED}:`);
  for (const [name, t] of totals) {
    console.log(`  ${name}: ${t.kills} kills, ${t.resumed} resumed, ${t.identical} identical`);
    ok &&= t.kills === t.resumed && t.resumed === t.identical;
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
