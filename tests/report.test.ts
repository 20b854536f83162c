import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { storeFor } from '../store/open.js';
import { getJson } from '../store/store.js';
import { runComparison } from '../cli/compare.js';
import { comparisonKey, loadReportData, type ComparisonRecord, type ReportData } from '../cli/report-data.js';
import { reportCommand, writeReport } from '../cli/report.js';
import { parseCampaignConfig, type CampaignConfig } from '../workflows/config.js';

const CHROMIUM = '/usr/bin/chromium';
const LAPS = 2;
const COUNT = 256;
const STEPS = 6;

/** The tiny example, shrunk further: two laps of a 256-point manifold, a few seconds per method. */
async function tinyConfig(): Promise<CampaignConfig> {
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
  return parseCampaignConfig(document, 'report test');
}

let dir = '';
let record: ComparisonRecord;
let html = '';
let data: ReportData;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'diffem-report-'));
  record = await runComparison({ store: dir, id: 'cmp', config: await tinyConfig() });
  html = (await writeReport(storeFor(dir), 'cmp')).html;
  data = await loadReportData(storeFor(dir), 'cmp');
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('compare runs both methods on the same data and records their E-step cost', async () => {
  assert.deepEqual(
    record.runs.map((r) => [r.method, r.campaignId]),
    [
      ['diffem', 'cmp-diffem'],
      ['emmps', 'cmp-emmps'],
    ],
  );
  assert.match(record.datasetDigest, /^[0-9a-f]{64}$/);
  const stored = await getJson<ComparisonRecord>(storeFor(dir), comparisonKey('cmp'));
  assert.deepEqual(stored, JSON.parse(JSON.stringify(record)));
  for (const run of record.runs) {
    assert.deepEqual(
      run.laps.map((l) => l.lap),
      [0, 1, 2],
    );
    assert.equal(run.laps[0].evaluations, 0, 'lap 0 samples the Gaussian posterior exactly');
  }
  const [diffem, emmps] = record.runs;
  // DiffEM: one pass per step plus the final denoise; EM-MMPS with one CG iteration: three.
  assert.equal(diffem.laps[1].evaluations, COUNT * (STEPS + 1));
  assert.equal(emmps.laps[1].evaluations, 3 * COUNT * (STEPS + 1));
  assert.equal(emmps.final?.evaluations, 3 * COUNT * (STEPS + 1));
  assert.equal(emmps.final?.cumulativeEvaluations, 3 * 3 * COUNT * (STEPS + 1));
});

test("compare gives each method its authors' settings and records the baseline's guidance solves per lap", () => {
  const [diffem, emmps] = record.runs;
  assert.equal(record.sameSettings, false);
  assert.equal(diffem.settings.timeDistribution, 'beta-mixture');
  assert.equal(emmps.settings.timeDistribution, 'beta33');
  assert.deepEqual([emmps.settings.solver, emmps.settings.solverIterations], ['cg', 1]);
  assert.equal(diffem.settings.solver, undefined);
  for (const lap of emmps.laps.slice(1)) {
    const g = lap.guidance;
    assert.ok(g, `lap ${lap.lap} of EM-MMPS records its guidance`);
    // Two shards, each STEPS guided evaluations plus the final denoise.
    assert.equal(g.evaluations, 2 * (STEPS + 1));
    assert.ok(Number.isInteger(g.breakdowns) && g.breakdowns >= 0);
    assert.ok(g.residualMax >= g.residualMean && g.residualMean >= 0 && Number.isFinite(g.residualMax));
  }
  assert.ok(diffem.laps.every((l) => l.guidance === undefined));
  // Every lap trains one model: 20 steps x 64 rows x (forward + backward), on top of the E-step's passes.
  for (const run of record.runs) {
    let passes = 0;
    for (const lap of run.laps) {
      passes += lap.evaluations + 20 * 64 * 2;
      assert.equal(lap.cumulativePasses, passes, `${run.method} lap ${lap.lap}`);
    }
  }
});

test('the report data: both runs, every lap plus the final E-step, sample clouds and figures', () => {
  assert.equal(data.kind, 'comparison');
  assert.equal(new Set(data.runs.map((r) => r.datasetDigest)).size, 1);
  for (const run of data.runs) {
    assert.deepEqual(
      run.laps.map((l) => l.label),
      ['lap 0', 'lap 1', 'lap 2', 'final'],
    );
    assert.ok(run.laps.every((l) => l.artifacts.every((a) => /^[0-9a-f]{64}$/.test(a.sha256) && a.bytes > 0)));
    assert.deepEqual(
      run.samples.map((s) => s.label),
      ['lap 0', 'lap 1', 'lap 2', 'final E-step'],
    );
    assert.ok(run.samples.every((s) => s.count === COUNT && s.points.length === COUNT * data.dim));
    assert.ok(
      run.figures.some((f) => f.name === 'reconstructions.png' && f.dataUri.startsWith('data:image/png;base64,')),
    );
  }
  assert.ok(data.metricNames.includes('sinkhorn') && data.metricNames.includes('curve_distance_mean'));
  assert.equal(data.curve?.length, 400 * data.dim);
});

test('the report command writes the page to --out', async () => {
  const out = join(dir, 'out.html');
  await reportCommand(['cmp', '--store', dir, '--out', out]);
  const written = await readFile(out, 'utf8');
  assert.ok(written.startsWith('<!doctype html>'));
  assert.ok(!/<script[^>]+src=|<link[^>]+href=/i.test(written), 'nothing is loaded from elsewhere');
  const single = await loadReportData(storeFor(dir), 'cmp-emmps');
  assert.equal(single.kind, 'campaign');
  assert.deepEqual(
    single.runs.map((r) => r.method),
    ['emmps'],
  );
});

test(
  'the report renders in a browser: no errors, no fetches, non-empty charts, a lineage row per lap',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (Debian package 'chromium')` },
  async () => {
    const { chromium } = await import('playwright-core');
    const file = join(dir, 'report.html');
    await writeFile(file, html);
    const profile = await mkdtemp(join(tmpdir(), 'diffem-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1400, height: 1000 },
    });
    try {
      const page = await context.newPage();
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`page: ${error.message}`));
      page.on('request', (request) => requests.push(request.url()));
      await page.goto(pathToFileURL(file).href);
      await page.waitForFunction("document.documentElement.dataset.ready === 'true'", undefined, { timeout: 30_000 });
      assert.deepEqual(problems, []);
      assert.deepEqual(requests, [pathToFileURL(file).href], 'the page fetches nothing but itself');

      // In-page code is passed as source: this project compiles without the DOM's types.
      const charts = (await page.evaluate(`Array.from(document.querySelectorAll('canvas'), (canvas) => {
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
        return { kind: canvas.dataset.kind || '', name: canvas.dataset.name || '', painted, area: canvas.width * canvas.height };
      })`)) as Array<{ kind: string; name: string; painted: number; area: number }>;
      const count = (kind: string) => charts.filter((c) => c.kind === kind).length;
      assert.equal(count('lap'), data.metricNames.length, 'one per-lap chart per metric');
      assert.ok(count('compute') >= 2, 'metric vs cumulative evaluations');
      const clouds = data.runs.reduce((n, r) => n + r.samples.length, 0);
      assert.equal(count('samples'), clouds * (data.dim - 1), 'one panel per drawn lap and coordinate pair');
      for (const c of charts)
        assert.ok(c.painted > c.area * 0.01, `chart ${c.kind}/${c.name} is blank (${c.painted} px)`);

      // What Chart.js holds: a line per method with a point per lap (and the final E-step).
      const sinkhorn = await page.evaluate(`(() => {
        const chart = Chart.getChart(document.querySelector('canvas[data-kind="lap"][data-name="sinkhorn"]'));
        return chart.data.datasets.map((d) => [d.label, d.data.length]);
      })()`);
      assert.deepEqual(sinkhorn, [
        ['diffem', LAPS + 2],
        ['emmps', LAPS + 2],
      ]);

      for (const run of data.runs) {
        const laps = await page.evaluate(
          `Array.from(document.querySelectorAll('table.lineage[data-campaign="${run.campaignId}"] tbody > tr[data-lap]'), (row) => Number(row.dataset.lap))`,
        );
        assert.deepEqual(laps, [0, 1, 2, LAPS + 1], `${run.campaignId}: a lineage row per lap and the final stage`);
      }
      const images = (await page.evaluate(
        `Array.from(document.querySelectorAll('#figures img'), (img) => img.naturalWidth)`,
      )) as number[];
      assert.ok(images.length >= 2 && images.every((w) => w > 0), `figures decoded: ${images}`);
      // The same figure of both runs in one row, in the runs' order, so the grids sit side by side.
      const reconstructions = await page.evaluate(
        `Array.from(document.querySelectorAll('#figures tr[data-figure="reconstructions.png"] img'), (img) => img.alt)`,
      );
      assert.deepEqual(
        reconstructions,
        data.runs.map((run) => `${run.campaignId} reconstructions.png`),
      );
    } finally {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    }
  },
);
