/**
 * A whole campaign on S3: the tiny manifold campaign through the real CLI with
 * `--store s3://...`, against a real S3 HTTP endpoint behind a proxy that fails every
 * 7th request, then killed mid-campaign and resumed from S3 alone. Its artifacts must match
 * the same campaign on the filesystem, byte for byte.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, startCli } from './helpers/cli.js';
import { startFlakyProxy, startS3, type FlakyProxy, type S3Fixture } from './helpers/s3.js';

let s3: S3Fixture;
let proxy: FlakyProxy;

before(async () => {
  s3 = await startS3({ bucket: 'campaigns' });
  proxy = await startFlakyProxy(s3.endpoint, { failEvery: 7 });
});

after(async () => {
  await proxy?.stop();
  await s3?.stop();
});

function digests(stdout: string): Map<string, string> {
  const laps = JSON.parse(stdout) as Array<{ artifacts: Array<{ key: string; sha256: string }> }>;
  return new Map(laps.flatMap((l) => l.artifacts.map((a) => [a.key, a.sha256] as [string, string])));
}

test('the tiny campaign runs, survives a flaky endpoint and a SIGKILL on S3, and matches the filesystem run', async () => {
  const env = { ...s3.env, DIFFEM_S3_ENDPOINT: proxy.endpoint };
  const uri = 's3://campaigns/team-a/diffem';
  const { child, done } = startCli(['run', 'examples/manifold-tiny.yaml', '--store', uri, '--id', 'tiny'], env);
  // Kill it once lap 1 is under way: the journal on S3 is all the resumed run has.
  const started = Date.now();
  for (;;) {
    // The watcher talks to S3 directly: only the campaign goes through the flaky proxy.
    const status = await runCli(['status', 'tiny', '--store', uri, '--json'], s3.env);
    if (status.code === 0 && (JSON.parse(status.stdout) as { lapsRecorded: number }).lapsRecorded >= 1) break;
    assert.ok(Date.now() - started < 600_000, 'lap 0 was recorded within 10 minutes');
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGKILL');
  assert.equal((await done).signal, 'SIGKILL');

  const resumed = await runCli(['resume', 'tiny', '--store', uri], env);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /already done \(reused\)/);
  assert.ok(proxy.failures() > 0, 'the proxy injected failures');

  const s3History = await runCli(['history', 'tiny', '--store', uri, '--json'], env);
  assert.equal(s3History.code, 0, s3History.stderr);

  const local = path.join(await mkdtemp(path.join(tmpdir(), 'diffem-s3-')), 'store');
  assert.equal((await runCli(['run', 'examples/manifold-tiny.yaml', '--store', local, '--id', 'tiny'])).code, 0);
  const fsHistory = await runCli(['history', 'tiny', '--store', local, '--json']);
  assert.deepEqual(digests(s3History.stdout), digests(fsHistory.stdout));
});
