import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { ConfigError, parseCampaignConfig } from '../workflows/config.js';
import { REPO, runCli } from './helpers/cli.js';

const tiny = () =>
  readFile(path.join(REPO, 'examples/manifold-tiny.yaml'), 'utf8').then((t) => parse(t) as Record<string, unknown>);

test('the shipped examples are valid configs', async () => {
  for (const name of ['manifold.yaml', 'manifold-tiny.yaml']) {
    const config = parseCampaignConfig(parse(await readFile(path.join(REPO, 'examples', name), 'utf8')), name);
    assert.equal(config.data.kind, 'manifold');
    assert.ok(Number.isInteger(config.seed));
  }
});

test('an unknown field is an error that names it', async () => {
  const doc = await tiny();
  (doc.training as Record<string, unknown>).stpes = 10;
  assert.throws(
    () => parseCampaignConfig(doc, 'bad.yaml'),
    (e: unknown) =>
      e instanceof ConfigError && /training/.test(e.message) && /stpes/.test(e.message) && /bad\.yaml/.test(e.message),
  );
});

test('a wrong type or range names the field path', async () => {
  const doc = await tiny();
  (doc.training as Record<string, unknown>).lr = -1;
  (doc.em as Record<string, unknown>).laps = 'many';
  try {
    parseCampaignConfig(doc, 'x.yaml');
    assert.fail('expected a ConfigError');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.ok(
      e.issues.some((i) => i.startsWith('training.lr:')),
      e.message,
    );
    assert.ok(
      e.issues.some((i) => i.startsWith('em.laps:')),
      e.message,
    );
  }
});

test('the seed is required', async () => {
  const doc = await tiny();
  delete doc.seed;
  assert.throws(() => parseCampaignConfig(doc), /seed/);
});

test('unknown channel kinds and schedule inversions are rejected', async () => {
  const doc = await tiny();
  doc.channel = { kind: 'blurr' };
  assert.throws(() => parseCampaignConfig(doc), /channel/);
  const doc2 = await tiny();
  doc2.schedule = { sigmaMin: 1, sigmaMax: 0.5 };
  assert.throws(() => parseCampaignConfig(doc2), /schedule\.sigmaMax/);
});

test('the CLI exits non-zero naming the bad field, and stores nothing', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'diffem-config-'));
  const file = path.join(dir, 'bad.yaml');
  await writeFile(
    file,
    (await readFile(path.join(REPO, 'examples/manifold-tiny.yaml'), 'utf8')).replace('laps: 2', 'laps: -2'),
  );
  const store = path.join(dir, 'store');
  const result = await runCli(['run', file, '--store', store, '--id', 'bad']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /em\.laps/);
  assert.match(result.stderr, /bad\.yaml/);
  await assert.rejects(readdir(store), /ENOENT/, 'no store was created for an invalid config');
});

test('the CLI reports a missing config file and a YAML syntax error by file name', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'diffem-config-'));
  const missing = await runCli(['run', path.join(dir, 'nope.yaml'), '--store', dir]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.yaml/);
  const broken = path.join(dir, 'broken.yaml');
  await writeFile(broken, 'seed: [1, 2\n');
  const syntax = await runCli(['run', broken, '--store', dir]);
  assert.equal(syntax.code, 2);
  assert.match(syntax.stderr, /broken\.yaml is not valid YAML/);
});

test('unknown commands and missing --store are usage errors', async () => {
  assert.equal((await runCli(['frobnicate'])).code, 2);
  const result = await runCli(['history', 'x']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--store/);
});

test('runtime.timeouts: per-activity Temporal timeouts, each bad field named by its path', async () => {
  const doc = await tiny();
  doc.runtime = {
    timeouts: { evaluate: { heartbeat: '30s', startToClose: '2h' }, trainConditional: { maximumAttempts: 8 } },
  };
  const config = parseCampaignConfig(doc, 'ok.yaml');
  assert.deepEqual(config.runtime.timeouts, {
    evaluate: { heartbeat: '30s', startToClose: '2h' },
    trainConditional: { maximumAttempts: 8 },
  });
  // Absent, the field stays absent: configs without it keep their digests.
  assert.equal('timeouts' in parseCampaignConfig(await tiny(), 'plain.yaml').runtime, false);

  const bad = (timeouts: unknown): string[] => {
    const d = structuredClone(doc);
    d.runtime = { timeouts };
    try {
      parseCampaignConfig(d, 'bad.yaml');
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.issues;
    }
    assert.fail(`accepted runtime.timeouts ${JSON.stringify(timeouts)}`);
  };
  assert.ok(
    bad({ evaluate: { heartbeat: 'soon' } }).some((i) => i.startsWith('runtime.timeouts.evaluate.heartbeat:')),
    'a bad duration',
  );
  assert.ok(
    bad({ evaluate: { startToClos: '1h' } }).some(
      (i) => i.startsWith('runtime.timeouts.evaluate') && /startToClos/.test(i),
    ),
    'a misspelt setting',
  );
  assert.ok(
    bad({ evalute: { heartbeat: '1m' } }).some((i) => i.startsWith('runtime.timeouts') && /evalute/.test(i)),
    'an unknown activity',
  );
  assert.ok(
    bad({ trainPrior: { maximumAttempts: 0 } }).some((i) =>
      i.startsWith('runtime.timeouts.trainPrior.maximumAttempts:'),
    ),
    'attempts below 1',
  );
});
