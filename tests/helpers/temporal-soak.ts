/**
 * The Temporal part of `npm run soak`: the tiny campaign on a real dev server (the CLI pinned in
 * tools/temporal), one `diffem worker --queue all` per campaign, and per trial one SIGKILL at a
 * seeded moment, of the worker (a new one is started at once) or of the server (started again
 * on the same SQLite file, so the history survives; the workers reconnect by themselves). No
 * one resumes anything: the workflow must complete by itself, and every artifact digest must
 * equal an uninterrupted Temporal run's, which must equal the embedded engine's (the server
 * tests hold the two engines to the same bytes).
 *
 * Each trial runs in a namespace of its own, so that every campaign can keep the id `t` (the
 * id is part of some artifacts) in a fresh store. The long activities get a 10 s heartbeat
 * timeout and the short ones a 30 s start-to-close timeout, so that an attempt lost with its
 * worker or its server is retried within seconds rather than the production defaults' minutes.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify, isDeepStrictEqual } from 'node:util';
import { Client, Connection } from '@temporalio/client';

import { loadConfigFile } from '../../engines/config-file.js';
import { startCampaign, workflowIdFor } from '../../engines/temporal/client.js';
import type { Rng } from '../../models/rng.js';
import { DEFAULT_TIMEOUTS, type StepTimeouts } from '../../workflows/temporal.js';
import type { ActivityName } from '../../workflows/types.js';
import { REPO, runCli } from './cli.js';
import { campaignDigests } from './digests.js';
import { DevServer, sleep, WorkerProcess } from './temporal-server.js';

export interface SoakTally {
  kills: number;
  resumed: number;
  identical: number;
}

export interface TemporalSoakOptions {
  /** Config path relative to the repository. */
  config: string;
  kills: number;
  rng: Rng;
  /** Epoch ms after which no new trial starts. */
  deadline: number;
  /** Share of trials that kill the worker rather than the server. */
  workerShare?: number;
}

const ID = 't';
const WORKFLOW_ID = workflowIdFor(ID);
/** Longest a killed trial may take to complete: several retry rounds on a loaded machine. */
const TRIAL_TIMEOUT_MS = 15 * 60_000;

/** Seconds-scale retries for every activity (see the module comment). */
const SOAK_TIMEOUTS = Object.fromEntries(
  (Object.keys(DEFAULT_TIMEOUTS) as ActivityName[]).map((name): [ActivityName, StepTimeouts] => [
    name,
    DEFAULT_TIMEOUTS[name].heartbeat ? { heartbeat: '10s' } : { startToClose: '30s' },
  ]),
);

/** The pinned Temporal CLI: DIFFEM_TEMPORAL_CLI, else what `temporal.sh build` builds or finds in .cache. */
async function temporalCli(): Promise<string> {
  const given = process.env.DIFFEM_TEMPORAL_CLI;
  if (given) return given;
  const { stdout } = await promisify(execFile)(path.join(REPO, 'tools/temporal/temporal.sh'), ['build'], {
    cwd: REPO,
  });
  const cli = stdout.trim().split('\n').at(-1) ?? '';
  process.env.DIFFEM_TEMPORAL_CLI = cli;
  return cli;
}

/** The terminal status of the campaign's workflow (following continue-as-new), polled through server restarts. */
async function finalStatus(client: Client, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const status = (await client.workflow.getHandle(WORKFLOW_ID).describe()).status.name;
      if (status !== 'RUNNING') return status;
    } catch {
      // The server is down or restarting: ask again.
    }
    if (Date.now() > deadline) return `still running after ${timeoutMs / 60_000} min`;
    await sleep(500);
  }
}

/** The steps (activity ids) in flight, as the server sees them: where a kill landed. */
async function stepsInFlight(client: Client): Promise<string> {
  try {
    const pending = (await client.workflow.getHandle(WORKFLOW_ID).describe()).raw.pendingActivities ?? [];
    const steps = pending.map((a) => `${a.activityId ?? '?'}${(a.attempt ?? 1) > 1 ? ` (attempt ${a.attempt})` : ''}`);
    return steps.length ? `during ${steps.join(', ')}` : 'between activities';
  } catch {
    return 'step unknown';
  }
}

function tail(text: string, lines = 5): string {
  return text.trim().split('\n').slice(-lines).join('\n    ');
}

export async function soakTemporal(options: TemporalSoakOptions): Promise<SoakTally> {
  const { kills, rng, deadline } = options;
  const workerShare = options.workerShare ?? 2 / 3;
  await temporalCli();
  const work = await mkdtemp(path.join(tmpdir(), 'diffem-soak-temporal-'));
  const tally: SoakTally = { kills: 0, resumed: 0, identical: 0 };
  const namespaces = Array.from({ length: 2 * kills + 1 }, (_, i) => `soak-${i}`);
  const server = await DevServer.start({ dbFile: path.join(work, 'temporal.sqlite'), namespaces });
  const connection = await Connection.connect({ address: server.address });
  const config = await loadConfigFile(path.join(REPO, options.config));
  const bundle = path.join(work, 'workflow-bundle.js');
  const workers: WorkerProcess[] = [];
  const startWorker = (namespace: string): WorkerProcess => {
    const worker = WorkerProcess.start('all', server.address, bundle, namespace);
    workers.push(worker);
    return worker;
  };
  try {
    const bundled = await runCli(['worker', 'bundle', '--out', bundle]);
    if (bundled.code !== 0) throw new Error(`diffem worker bundle failed: ${bundled.stderr}`);
    const embeddedStore = path.join(work, 'embedded');
    const embedded = await runCli(['run', options.config, '--store', embeddedStore, '--id', ID]);
    if (embedded.code !== 0) throw new Error(`the embedded run failed: ${embedded.stderr}`);
    const embeddedDigests = await campaignDigests(embeddedStore, ID);

    const campaign = async (namespace: string, store: string): Promise<void> => {
      await startCampaign({
        store,
        campaignId: ID,
        config,
        address: server.address,
        namespace,
        options: { timeouts: SOAK_TIMEOUTS },
      });
    };

    const refStore = path.join(work, 'store-0');
    const refWorker = startWorker('soak-0');
    const started = performance.now();
    await campaign('soak-0', refStore);
    const refStatus = await finalStatus(new Client({ connection, namespace: 'soak-0' }), TRIAL_TIMEOUT_MS);
    const seconds = (performance.now() - started) / 1000;
    if (refStatus !== 'COMPLETED')
      throw new Error(`the uninterrupted Temporal run ended ${refStatus}:\n${(await refWorker.stop()).stderr}`);
    await refWorker.stop();
    const expected = await campaignDigests(refStore, ID);
    const sameAsEmbedded = isDeepStrictEqual(expected, embeddedDigests);
    console.log(
      `[temporal] uninterrupted run: ${seconds.toFixed(1)} s from start to completion (worker start included), ` +
        `${expected.size} artifacts, ${sameAsEmbedded ? 'identical to' : 'DIFFERENT FROM'} the embedded engine's`,
    );
    if (!sameAsEmbedded) throw new Error('the Temporal and embedded runs of one config differ: no reference');

    // A trial whose campaign completes before its kill moment is not a kill: draw another, up to 2N trials.
    for (let i = 1; tally.kills < kills && i <= 2 * kills; i++) {
      if (Date.now() > deadline) {
        console.log(`[temporal] time limit reached after ${tally.kills} kills`);
        break;
      }
      const trial = rng.fork('trial', i);
      const victim = trial.uniform() < workerShare ? 'worker' : 'server';
      const delayMs = Math.round(trial.uniform() * 0.8 * seconds * 1000);
      const namespace = `soak-${i}`;
      const client = new Client({ connection, namespace });
      const store = path.join(work, `store-${i}`);
      let worker = startWorker(namespace);
      const trialStart = performance.now();
      await campaign(namespace, store);
      await sleep(Math.max(0, delayMs - (performance.now() - trialStart)));
      const where = await stepsInFlight(client);
      if ((await client.workflow.getHandle(WORKFLOW_ID).describe()).status.name !== 'RUNNING') {
        console.log(
          `[temporal] trial ${i}: completed before the kill at ${(delayMs / 1000).toFixed(2)} s; not counted`,
        );
        await worker.stop();
        await rm(store, { recursive: true, force: true });
        continue;
      }
      if (victim === 'worker') {
        await worker.kill();
        worker = startWorker(namespace);
      } else {
        await server.kill();
        await server.restart();
      }
      tally.kills++;
      const status = await finalStatus(client, TRIAL_TIMEOUT_MS);
      let verdict: string;
      if (status !== 'COMPLETED') verdict = `workflow ${status}: ${tail((await worker.stop()).stderr)}`;
      else {
        tally.resumed++;
        const identical = isDeepStrictEqual(await campaignDigests(store, ID), expected);
        if (identical) tally.identical++;
        verdict = `completed by itself, ${identical ? 'identical' : 'DIGESTS DIFFER'}`;
      }
      console.log(
        `[temporal] kill ${tally.kills}: SIGKILL ${victim} at ${(delayMs / 1000).toFixed(2)} s ${where} -> ${verdict}`,
      );
      await worker.stop();
      await rm(store, { recursive: true, force: true });
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await connection.close();
    await server.stop();
    await rm(work, { recursive: true, force: true });
  }
  console.log(`[temporal] ${tally.kills} kills, ${tally.resumed} resumed, ${tally.identical} identical`);
  return tally;
}
