/**
 * A campaign terminated mid-way and started again under the same id skips every step it
 * finished: the workers journal each step's output in the store (engines/temporal/journal.ts)
 * and a new start returns it, after checking every artifact's sha256, without recomputing.
 * Shown by the journal (a reused step gains no execution) and by the artifacts, which equal
 * the embedded engine's uninterrupted run sha256 for sha256.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { REPO } from './helpers/cli.js';
import { artifactDigests, campaignStatus, embeddedReference } from './helpers/campaign-cli.js';
import { DevServer, diffem, serverSkipReason, waitFor, WorkerProcess } from './helpers/temporal-server.js';
import type { StepRecord } from '../engines/records.js';

const TINY = path.join(REPO, 'examples', 'manifold-tiny.yaml');
const skip = serverSkipReason();
const ID = 'tiny';

let dir: string;
let bundle: string;
let reference: Map<string, string>;

before(async () => {
  if (skip) return;
  ({ dir, bundle, reference } = await embeddedReference('diffem-e2e-restart-', TINY, ID));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The campaign's journal as the store holds it: step id -> record. */
async function journal(store: string): Promise<Map<string, StepRecord>> {
  const root = path.join(store, 'campaigns', ID, 'steps');
  const records = new Map<string, StepRecord>();
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const file = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(file);
      else if (entry.name.endsWith('.json')) {
        const record = JSON.parse(await readFile(file, 'utf8')) as StepRecord;
        records.set(record.step, record);
      }
    }
  };
  if (existsSync(root)) await walk(root);
  return records;
}

describe('a campaign started again under its id', { skip }, () => {
  test('terminated mid-way, then started again: finished steps are not recomputed, artifacts equal', async () => {
    const server = await DevServer.start({ dbFile: path.join(dir, 'restart.sqlite') });
    const store = path.join(dir, 'store');
    const workers = [
      WorkerProcess.start('diffem-cpu', server.address, bundle),
      WorkerProcess.start('diffem-gpu', server.address, bundle),
    ];
    const connection = await Connection.connect({ address: server.address });
    try {
      const client = new Client({ connection });
      const run = ['run', TINY, '--engine', 'temporal', '--store', store, '--id', ID];
      await diffem(server.address, run);
      const lapOne = path.join(store, 'campaigns', ID, 'laps', 'lap-001.json');
      await waitFor('lap 1 recorded', async () => (existsSync(lapOne) ? true : undefined));
      await client.workflow.getHandle(`diffem-${ID}`).terminate('the test ends this run mid-way');
      const before = await journal(store);
      const finished = [...before.values()].filter((r) => r.status === 'done');
      assert.ok(
        ['data/prepare', 'data/shard', 'lap-000/gaussian', 'lap-000/evaluate', 'lap-000/train', 'lap-001/train'].every(
          (step) => before.get(step)?.status === 'done',
        ),
        `the journal lacks finished steps: ${[...before.keys()].join(', ')}`,
      );

      await diffem(server.address, run);
      await client.workflow.getHandle(`diffem-${ID}`).result();
      assert.equal((await campaignStatus(store, ID)).status, 'done');
      const afterRestart = await journal(store);
      for (const record of finished) {
        assert.deepEqual(
          afterRestart.get(record.step)?.executions,
          record.executions,
          `step ${record.step} ran again after the restart`,
        );
      }
      // The rest of the campaign did run: the final stage's steps are in the journal now.
      assert.ok(
        [...afterRestart.keys()].some((step) => !before.has(step)),
        'no step ran after the restart',
      );
      console.log(`restart: ${finished.length} finished steps reused, ${afterRestart.size - before.size} run`);
      assert.deepEqual(await artifactDigests(store, ID), reference);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await connection.close();
      await server.stop();
    }
  });
});
