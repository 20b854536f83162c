/**
 * Histories recorded from a real server, replayed offline by tests/temporal-workflow.test.ts.
 * `tests/histories/index.json` maps each file to the workflow id it ran under (a scheduled run
 * derives its campaign id from that id, so replay must be given it).
 *
 * The end-to-end tests write them only when DIFFEM_RECORD_HISTORIES=1, so an ordinary test run
 * leaves the committed recordings untouched.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { REPO } from './cli.js';

export const HISTORIES_DIR = path.join(REPO, 'tests', 'histories');
export const HISTORY_INDEX = path.join(HISTORIES_DIR, 'index.json');

export interface RecordedHistory {
  /** File name under tests/histories. */
  file: string;
  workflowId: string;
  /** What the run shows (pause, stop, continue-as-new, ...). */
  shows: string;
}

export async function readHistoryIndex(): Promise<RecordedHistory[]> {
  try {
    return JSON.parse(await readFile(HISTORY_INDEX, 'utf8')) as RecordedHistory[];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** Fetches a run's history and stores it under `name` when recording is on. */
export async function recordHistory(
  client: Client,
  name: string,
  workflowId: string,
  shows: string,
  runId?: string,
): Promise<void> {
  if (process.env.DIFFEM_RECORD_HISTORIES !== '1') return;
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const file = `${name}.json`;
  await writeFile(path.join(HISTORIES_DIR, file), JSON.stringify(JSON.parse(historyToJSON(history)), null, 1) + '\n');
  const index = (await readHistoryIndex()).filter((h) => h.file !== file);
  index.push({ file, workflowId, shows });
  index.sort((a, b) => a.file.localeCompare(b.file));
  await writeFile(HISTORY_INDEX, JSON.stringify(index, null, 2) + '\n');
}
