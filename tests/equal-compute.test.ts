/**
 * `diffem compare` at equal total compute: the plan (the cheaper method's smallest lap count
 * whose passes reach the dearer one's), the verdict per statistic, and a real comparison of a
 * tiny manifold through the CLI, whose extended run must reproduce the original's laps byte
 * for byte before it goes on, and whose report renders in headless Chromium with both methods.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { storeFor } from '../store/open.js';
import { getJson } from '../store/store.js';
import { getTensors } from '../store/tensors.js';
import { campaignHistory } from '../cli/history.js';
import { comparisonKey, type ComparisonRecord } from '../cli/report-data.js';
import { describeVerdicts, metricSense, planEqualCompute, verdicts } from '../cli/equal-compute.js';
import { parseCampaignConfig, type CampaignConfig } from '../workflows/config.js';
import { runCli, type CliResult } from './helpers/cli.js';

const LAPS = 2;
const COUNT = 256;
const STEPS = 6;

/** examples/manifold-tiny.yaml shrunk to seconds per campaign (as in report.test.ts). */
async function tinyDocument(): Promise<Record<string, unknown>> {
  const document = parseYaml(
    await readFile(new URL('../../examples/manifold-tiny.yaml', import.meta.url), 'utf8'),
  ) as Record<string, Record<string, unknown>>;
  document.data = { ...document.data, count: COUNT };
  document.model = { ...document.model, hidden: [16, 16], embedDim: 8 };
  document.em = { ...document.em, laps: LAPS, gaussianIterations: 4, shardSize: COUNT / 2 };
  document.estep = { steps: STEPS, mmpsCgIterations: 1 };
  document.training = { ...document.training, steps: 20, firstSteps: 20, batchSize: 64, checkpointEvery: 20 };
  document.prior = { steps: 20, samples: 128, samplerSteps: STEPS };
  document.metrics = { samples: 128 };
  return document;
}

function chromiumPath(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

const CHROMIUM = chromiumPath();

let dir = '';
let store = '';
let config: CampaignConfig;
let cli: CliResult;
let record: ComparisonRecord;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'diffem-equal-'));
  store = join(dir, 'store');
  const document = await tinyDocument();
  config = parseCampaignConfig(document, 'equal-compute test');
  const file = join(dir, 'tiny.yaml');
  await writeFile(file, stringifyYaml(document));
  cli = await runCli(['compare', file, '--store', store, '--id', 'cmp', '--out', join(dir, 'report.html')]);
  assert.equal(cli.code, 0, cli.stderr);
  record = await getJson<ComparisonRecord>(storeFor(store), comparisonKey('cmp'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const run = (method: 'diffem' | 'emmps', passes: number[]) => ({
  method,
  laps: passes.map((cumulativePasses, lap) => ({ lap, cumulativePasses })),
});

test('the cheaper method gets the fewest laps whose passes reach the other', () => {
  // DiffEM: 100 for lap 0, then 200 a lap; EM-MMPS: 400 a lap.
  const plan = planEqualCompute(run('diffem', [100, 300, 500]), run('emmps', [100, 500, 900]));
  assert.deepEqual(plan, {
    extended: 'diffem',
    against: 'emmps',
    budgetPasses: 900,
    ownPasses: 500,
    perLapPasses: 200,
    fromLaps: 2,
    laps: 4,
  });
  // Exactly reachable: one extra lap, not two.
  assert.equal(planEqualCompute(run('emmps', [100, 400, 700]), run('diffem', [100, 300, 500]))?.laps, 3);
  // Whichever is cheaper, in either order.
  assert.equal(planEqualCompute(run('emmps', [100, 300]), run('diffem', [100, 1000]))?.extended, 'emmps');
  assert.equal(planEqualCompute(run('diffem', [100, 300]), run('emmps', [100, 300])), null);
  assert.throws(() => planEqualCompute(run('diffem', [100]), run('emmps', [100, 900])), /no EM lap to repeat/);
});

test('a verdict per statistic follows its sense', () => {
  assert.equal(metricSense('psnr', config), 'higher');
  assert.equal(metricSense('fid', config), 'lower');
  assert.deepEqual(metricSense('consistency', config), { target: 1 }, 'm/2 with m = obsDim = 2');
  assert.equal(metricSense('final_loss', config), null);
  const list = verdicts(
    [
      { method: 'diffem', metrics: { psnr: 20, fid: 50, consistency: 3, final_loss: 0.1 } },
      { method: 'emmps', metrics: { psnr: 18, fid: 40, consistency: 0.5, final_loss: 0.2 } },
    ],
    config,
  );
  assert.deepEqual(
    list.map((v) => [v.metric, v.winner]),
    [
      ['psnr', 'diffem'],
      ['fid', 'emmps'],
      // |ln 3| > |ln 0.5|
      ['consistency', 'emmps'],
    ],
  );
  assert.equal(describeVerdicts(list), 'diffem wins psnr; emmps wins fid, consistency');
});

test('compare runs the cheaper method on to the dearer one’s passes, and says so', () => {
  const equal = record.equalCompute;
  assert.ok(equal, 'an equal-compute run is recorded by default');
  assert.deepEqual([equal.extended, equal.against, equal.campaignId], ['diffem', 'emmps', 'cmp-diffem-equal']);
  const [diffem, emmps] = record.runs;
  assert.equal(equal.budgetPasses, emmps.laps[LAPS].cumulativePasses);
  assert.equal(equal.ownPasses, diffem.laps[LAPS].cumulativePasses);
  assert.ok(equal.ownPasses < equal.budgetPasses, 'DiffEM is the cheaper at equal laps');
  const passes = equal.run.laps.map((l) => l.cumulativePasses);
  assert.deepEqual(
    equal.run.laps.map((l) => l.lap),
    Array.from({ length: equal.laps + 1 }, (_, i) => i),
  );
  assert.ok(passes[equal.laps] >= equal.budgetPasses, `reaches the budget: ${passes[equal.laps]}`);
  assert.ok(passes[equal.laps - 1] < equal.budgetPasses, 'and one lap fewer would not');
  assert.ok(equal.laps > LAPS);
  assert.equal(equal.reproducedLaps, LAPS + 1);
  // Wall time rides along with the passes.
  assert.ok(
    equal.run.laps.every(
      (l, i) => (l.cumulativeSeconds ?? -1) >= (i ? (equal.run.laps[i - 1].cumulativeSeconds ?? 0) : 0),
    ),
  );

  const verdict = record.verdicts;
  assert.ok(verdict);
  for (const [list, sides] of [
    [verdict.equalLaps, [diffem.laps[LAPS].metrics, emmps.laps[LAPS].metrics]],
    [verdict.equalCompute, [equal.run.laps[equal.laps].metrics, emmps.laps[LAPS].metrics]],
  ] as const) {
    const sinkhorn = list.find((v) => v.metric === 'sinkhorn');
    assert.ok(sinkhorn);
    assert.deepEqual(sinkhorn.values, { diffem: sides[0].sinkhorn, emmps: sides[1].sinkhorn });
    assert.equal(sinkhorn.winner, sides[0].sinkhorn < sides[1].sinkhorn ? 'diffem' : 'emmps');
  }
  assert.match(cli.stdout, /diffem at equal compute: \d+ laps \(cmp-diffem-equal\)/);
  assert.match(cli.stdout, /at equal laps: .*wins/);
  assert.match(cli.stdout, /at equal compute: .*wins/);
});

test('the extended run reproduces the original laps: same artifacts, same weights, same metrics', async () => {
  const s = storeFor(store);
  const [original, extended] = await Promise.all([
    campaignHistory(s, 'cmp-diffem'),
    campaignHistory(s, 'cmp-diffem-equal'),
  ]);
  assert.equal(original.length, LAPS + 1);
  for (const lap of original) {
    const again = extended.find((l) => l.lap === lap.lap);
    assert.ok(again, `lap ${lap.lap} exists in the extended run`);
    assert.deepEqual(again.metrics, lap.metrics, `lap ${lap.lap} metrics`);
    assert.deepEqual(again.seeds, lap.seeds, `lap ${lap.lap} seeds`);
    const strip = (key: string, id: string) => key.replace(`campaigns/${id}/`, '');
    const ours = new Map(lap.artifacts.map((a) => [strip(a.key, 'cmp-diffem'), a]));
    const theirs = new Map(again.artifacts.map((a) => [strip(a.key, 'cmp-diffem-equal'), a]));
    assert.deepEqual([...theirs.keys()].sort(), [...ours.keys()].sort(), `lap ${lap.lap} artifact keys`);
    assert.ok(ours.size >= 2);
    for (const [key, ref] of ours) {
      const other = theirs.get(key)!;
      if (key.endsWith('weights.safetensors')) {
        // The weights' metadata names the campaign; their tensors must be equal bit for bit.
        const [a, b] = await Promise.all([getTensors(s, ref), getTensors(s, other)]);
        assert.deepEqual(Object.keys(b.tensors).sort(), Object.keys(a.tensors).sort());
        for (const name of Object.keys(a.tensors)) {
          assert.deepEqual(
            Buffer.from(b.tensors[name].data.buffer, b.tensors[name].data.byteOffset, b.tensors[name].data.byteLength),
            Buffer.from(a.tensors[name].data.buffer, a.tensors[name].data.byteOffset, a.tensors[name].data.byteLength),
            `lap ${lap.lap} ${key} tensor ${name}`,
          );
        }
      } else if (!key.includes('figures/')) {
        assert.equal(other.sha256, ref.sha256, `lap ${lap.lap} ${key}`);
      }
    }
  }
  // And it went on: laps past the original's, with E-step work of their own.
  const further = extended.filter((l) => l.lap > LAPS);
  assert.ok(further.length >= 1 && further.every((l) => l.evaluations > 0));
});

test('the stored report has both methods per lap, the equal-compute table and the verdicts in words', async () => {
  const html = await readFile(join(dir, 'report.html'), 'utf8');
  for (const campaign of ['cmp-diffem', 'cmp-emmps', 'cmp-diffem-equal']) {
    assert.match(html, new RegExp(`<table class="per-lap" data-method="\\w+" data-campaign="${campaign}">`));
  }
  assert.match(html, /<p class="verdict" id="verdict-laps"><strong>At equal laps \(lap 2\):<\/strong> [^<]*wins/);
  assert.match(
    html,
    /<p class="verdict" id="verdict-compute"><strong>At equal compute \(diffem lap \d+ against emmps lap 2\):/,
  );
  assert.equal((html.match(/<tr data-setting="(laps|compute)"/g) ?? []).length, 4);
});

/** What headless Chromium made of the page: the DOM after its scripts ran, and its console. */
async function dumpDom(chromium: string, file: string): Promise<{ dom: string; log: string; code: number | null }> {
  const profile = await mkdtemp(join(tmpdir(), 'diffem-chromium-'));
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(
        chromium,
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--enable-logging=stderr',
          '--v=0',
          `--user-data-dir=${profile}`,
          '--virtual-time-budget=10000',
          '--dump-dom',
          pathToFileURL(file).href,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let dom = '';
      let log = '';
      child.stdout.on('data', (d: Buffer) => (dom += d.toString()));
      child.stderr.on('data', (d: Buffer) => (log += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ dom, log, code });
      });
    });
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

test(
  'the report renders in headless Chromium: script finished, both methods charted and tabled, no script errors',
  { skip: CHROMIUM ? false : "'chromium' is not on PATH (Debian package 'chromium')" },
  async () => {
    const { dom, log, code } = await dumpDom(CHROMIUM!, join(dir, 'report.html'));
    assert.equal(code, 0, log.slice(-2000));
    assert.doesNotMatch(log, /Uncaught|SyntaxError|ReferenceError|TypeError/, 'no script errors in the console');
    // The page's script sets this as its last statement: everything before it ran.
    assert.match(dom, /<html lang="en" data-ready="true">/);
    const canvases = (kind: string) => (dom.match(new RegExp(`<canvas [^>]*data-kind="${kind}"`, 'g')) ?? []).length;
    const metrics = new Set(record.runs.flatMap((r) => r.laps.flatMap((l) => Object.keys(l.metrics))));
    assert.ok(canvases('lap') >= metrics.size, `a per-lap chart per metric: ${canvases('lap')} for ${metrics.size}`);
    assert.ok(canvases('compute') >= 2 && canvases('wall') >= 2, 'charts against passes and seconds');
    for (const campaign of ['cmp-diffem', 'cmp-emmps', 'cmp-diffem-equal']) {
      const table = new RegExp(
        `<table class="per-lap" data-method="\\w+" data-campaign="${campaign}">(.*?)</table>`,
        's',
      ).exec(dom);
      assert.ok(table, `a per-lap table of ${campaign}`);
      const laps = campaign.endsWith('equal') ? record.equalCompute!.laps : LAPS;
      assert.equal(
        (table[1].match(/<tr data-lap=/g) ?? []).length,
        laps + 2,
        `${campaign}: every lap and the final E-step`,
      );
    }
    assert.match(dom, /id="verdict-compute"/);
  },
);

test('--equal-laps resumes the two campaigns and records no equal-compute run; the report says so', async () => {
  const again = await runCli(['compare', join(dir, 'tiny.yaml'), '--store', store, '--id', 'cmp', '--equal-laps']);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /at equal compute/);
  const stored = await getJson<ComparisonRecord>(storeFor(store), comparisonKey('cmp'));
  assert.equal(stored.equalCompute, undefined);
  assert.deepEqual(
    stored.runs.map((r) => r.laps.map((l) => l.metrics)),
    record.runs.map((r) => r.laps.map((l) => l.metrics)),
    'the resumed runs read back the same laps',
  );
  const html = new TextDecoder().decode(await storeFor(store).get('campaigns/cmp/report.html'));
  assert.match(html, /No equal-compute run: the comparison ran with <code>--equal-laps<\/code>/);
  assert.doesNotMatch(html, /data-campaign="cmp-diffem-equal"/);
});

test('an extended run whose first laps differ from the original fails the comparison by name', async () => {
  // A lap record of the extended campaign altered after the fact: the check must catch it on resume.
  const file = join(store, 'campaigns', 'cmp-diffem-equal', 'laps', 'lap-001.json');
  const lapRecord = JSON.parse(await readFile(file, 'utf8')) as { metrics: Record<string, number> };
  lapRecord.metrics.sinkhorn += 1;
  await writeFile(file, JSON.stringify(lapRecord));
  const failed = await runCli(['compare', join(dir, 'tiny.yaml'), '--store', store, '--id', 'cmp']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /cmp-diffem-equal did not reproduce lap 1 of cmp-diffem/);
  const stored = await getJson<ComparisonRecord>(storeFor(store), comparisonKey('cmp'));
  assert.equal(stored.equalCompute, undefined, 'the comparison record is not replaced by a failed one');
});
