/**
 * The report as one self-contained HTML page: the data inline as JSON, the charting
 * library (Chart.js, its UMD build) inline as a script, images as data: URIs, and a
 * content-security policy that forbids every fetch, so the file reads the same offline,
 * attached to an issue or years later. Tables (summary, lineage) are plain HTML; charts
 * are drawn by a small inline script from the JSON.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Metrics } from '../workflows/types.js';
import type { ReportData, ReportLap, ReportRun } from './report-data.js';
import { describeVerdicts } from './equal-compute.js';

/** Chart.js's browser build, read from the installed package. */
export function chartLibrarySource(): string {
  // The package exports only its module entry points; the UMD build sits beside them.
  const entry = createRequire(import.meta.url).resolve('chart.js');
  return readFileSync(join(dirname(entry), 'chart.umd.min.js'), 'utf8');
}

export function renderReportHtml(data: ReportData, chartLibrary: string = chartLibrarySource()): string {
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(data.title)}</h1>
${summarySection(data)}
${equalComputeSection(data)}
<section id="lap-metrics"><h2>Metrics per lap</h2>
<p class="note">Lap 0 is the Gaussian initialisation; lap k is evaluated on the E-step samples of the model of lap k-1; "final" is the E-step with the last model.</p>
<div class="grid" id="lap-charts"></div>
${lapTables(data)}</section>
<section id="compute"><h2>Metrics against total compute</h2>
<p class="note">The cost axis counts every network pass over one row: training's (a forward and a backward pass per row of each batch) and sampling's (DiffEM one per sampler step; EM-MMPS one forward pass, one VJP per solver iteration and one more VJP). The second row of charts puts the same metrics against cumulative activity seconds (wall time of the work, on this machine). A dashed line is the cheaper method run on to the dearer one's passes (see &quot;Equal laps and equal compute&quot;).</p>
<div class="grid" id="compute-charts"></div><div class="grid" id="wall-charts"></div></section>
<section id="samples"><h2>E-step samples against the true curve</h2>
<p class="note">Two-dimensional projections (coordinate pairs) of stored E-step samples (blue) and the true curve (red).</p>
<div id="sample-charts"></div></section>
${figuresSection(data)}
${lineageSection(data)}
<section id="config"><h2>Configuration</h2><details><summary>${data.kind === 'comparison' ? 'Shared config (the runs differ in <code>method</code> and in the settings tabled above)' : 'Campaign config'}</summary><pre>${escapeHtml(JSON.stringify(data.config, null, 2))}</pre></details></section>
<script type="application/json" id="report-data">${json}</script>
<script>${chartLibrary.replace(/<\/script/gi, '<\\/script')}</script>
<script>${CLIENT}</script>
</body>
</html>
`;
}

function summarySection(data: ReportData): string {
  const keys = data.metricNames.filter((m) => m !== 'final_loss');
  const header = ['method', 'campaign', 'status', 'laps', ...keys, 'E-step evaluations', 'observations sha256'];
  const rows = data.runs.map((run) => {
    const recorded = run.laps.filter((l) => l.label !== 'final');
    const last = recorded[recorded.length - 1];
    const total = [...run.laps].reverse().find((l) => l.cumulativeEvaluations !== null)?.cumulativeEvaluations ?? null;
    return `<tr data-method="${escapeHtml(run.method)}"><td>${escapeHtml(run.method)}</td><td>${escapeHtml(run.campaignId)}</td><td>${escapeHtml(run.status)}</td><td>${last ? last.lap : '-'}</td>${keys
      .map((k) => `<td>${last ? formatMetric(last.metrics, k) : '-'}</td>`)
      .join(
        '',
      )}<td>${total === null ? '-' : total.toLocaleString('en-US')}</td><td><code title="${escapeHtml(run.datasetDigest ?? '')}">${escapeHtml(short(run.datasetDigest))}</code></td></tr>`;
  });
  const digests = new Set(data.runs.map((r) => r.datasetDigest));
  const same =
    data.kind === 'comparison'
      ? `<p class="note">${digests.size === 1 ? 'Both runs learn from the same corrupted data (equal digests of the observations).' : '<strong>The runs saw different data.</strong>'}</p>`
      : '';
  return `<section id="summary"><h2>Last recorded lap</h2>${same}${settingsTable(data)}<table class="summary"><thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>${finalTable(data)}</section>`;
}

/** What each method ran on, so a reader sees whether the baseline had its authors' settings. */
function settingsTable(data: ReportData): string {
  const rows = data.runs.map((run) => {
    const s = run.settings;
    const solve =
      s.method === 'emmps' ? `${s.solver ?? 'cg'}, ${s.solverIterations ?? 'exact (small m)'} iterations` : '-';
    const spent = run.laps.reduce(
      (acc, l) => {
        if (!l.guidance) return acc;
        return {
          breakdowns: acc.breakdowns + l.guidance.breakdowns,
          residual: Math.max(acc.residual, l.guidance.residualMax),
        };
      },
      { breakdowns: 0, residual: 0 },
    );
    const guided = run.laps.some((l) => l.guidance);
    return `<tr data-method="${escapeHtml(run.method)}"><td>${escapeHtml(run.method)}</td><td>${escapeHtml(s.timeDistribution)}</td><td class="num">${s.sigmaMin}..${s.sigmaMax}</td><td class="num">${s.trainingSteps}</td><td class="num">${s.estepSteps}</td><td>${escapeHtml(solve)}</td><td class="num">${guided ? spent.breakdowns.toLocaleString('en-US') : '-'}</td><td class="num">${guided ? spent.residual.toExponential(2) : '-'}</td></tr>`;
  });
  return `<table class="summary settings"><thead><tr><th>method</th><th>training time distribution</th><th>sigma</th><th>training steps / lap</th><th>sampler steps</th><th>guidance solve</th><th title="CG directions with non-positive curvature, clamped to s_y^2">clamped directions (all laps)</th><th>worst final solve residual</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function finalTable(data: ReportData): string {
  const runs = data.runs.filter((r) => r.laps.some((l) => l.label === 'final') || r.priorMetrics);
  if (!runs.length) return '';
  const keys = data.metricNames.filter((m) => m !== 'final_loss');
  const rows = runs.map((run) => {
    const final = run.laps.find((l) => l.label === 'final');
    const prior = run.priorMetrics;
    return [
      `<tr><td>${escapeHtml(run.method)}</td><td>final E-step</td>${keys.map((k) => `<td>${final ? formatMetric(final.metrics, k) : '-'}</td>`).join('')}</tr>`,
      prior
        ? `<tr><td>${escapeHtml(run.method)}</td><td>final prior samples</td>${keys.map((k) => `<td>${formatMetric(prior, k)}</td>`).join('')}</tr>`
        : '',
    ].join('');
  });
  return `<h3>After the last lap</h3><table class="summary"><thead><tr><th>method</th><th>samples</th>${keys.map((k) => `<th>${escapeHtml(k)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/**
 * The runs' figures, one row per figure name and one column per run, so that a comparison
 * sets each method's grid of the same lap beside the other's.
 */
function figuresSection(data: ReportData): string {
  const runs = data.runs.filter((run) => run.figures.length);
  if (!runs.length) return '';
  const names = [...new Set(runs.flatMap((run) => run.figures.map((f) => f.name)))].sort();
  const cell = (run: ReportRun, name: string): string => {
    const f = run.figures.find((g) => g.name === name);
    if (!f) return '<td>-</td>';
    return `<td><figure class="image"><img alt="${escapeHtml(`${run.campaignId} ${f.name}`)}" src="${f.dataUri}"><figcaption>${f.bytes.toLocaleString('en-US')} bytes, sha256 <code title="${f.sha256}">${short(f.sha256)}</code></figcaption></figure></td>`;
  };
  const rows = names.map(
    (name) =>
      `<tr data-figure="${escapeHtml(name)}"><th><code>${escapeHtml(name)}</code></th>${runs.map((run) => cell(run, name)).join('')}</tr>`,
  );
  const head = runs
    .map((run) => `<th>${escapeHtml(run.method)}: <code>${escapeHtml(run.campaignId)}</code></th>`)
    .join('');
  return `<section id="figures"><h2>Figures</h2><table class="images"><thead><tr><th>figure</th>${head}</tr></thead><tbody>${rows.join('')}</tbody></table></section>`;
}

function lineageSection(data: ReportData): string {
  const runs = data.equalCompute ? [...data.runs, data.equalCompute.run] : data.runs;
  const tables = runs.map((run) => {
    const rows = run.laps.map((lap) => lineageRow(lap));
    return `<h3>${escapeHtml(run.method)}: <code>${escapeHtml(run.campaignId)}</code></h3>
<table class="lineage" data-campaign="${escapeHtml(run.campaignId)}"><thead><tr><th>lap</th><th>seconds</th><th title="activity attempts over the lap's steps">step attempts</th><th>started</th><th>finished</th><th>E-step evaluations</th><th>training passes</th><th title="EM-MMPS: clamped CG directions; worst and mean final relative residual of the guidance solves">guidance clamps / residual max / mean</th><th>artifacts (key, sha256, bytes)</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  });
  return `<section id="lineage"><h2>Lineage</h2>${chainTables(data)}${tables.join('')}</section>`;
}

/** The retraining chain of each run: parent, data snapshot and final metrics per campaign. */
function chainTables(data: ReportData): string {
  return data.runs
    .filter((run) => run.chain.length > 1 || run.chain.some((link) => link.snapshot))
    .map((run) => {
      const names = [...new Set(run.chain.flatMap((link) => Object.keys(link.metrics ?? {})))];
      const rows = run.chain.map(
        (link) =>
          `<tr><td><code>${escapeHtml(link.campaignId)}</code></td><td>${link.parent ? `<code>${escapeHtml(link.parent)}</code>` : '-'}</td><td>${link.snapshot ? `${link.snapshot.files} files, <code>${link.snapshot.digest.slice(0, 12)}</code>` : 'drawn from the seed'}</td><td>${link.laps ?? '-'}</td>${names.map((n) => `<td>${link.metrics && n in link.metrics ? Number(link.metrics[n].toPrecision(4)) : '-'}</td>`).join('')}</tr>`,
      );
      return `<h3>Retraining chain of <code>${escapeHtml(run.campaignId)}</code></h3>
<table class="chain"><thead><tr><th>campaign</th><th>parent</th><th>data snapshot</th><th>laps</th>${names.map((n) => `<th>${escapeHtml(n)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
    })
    .join('');
}

function lineageRow(lap: ReportLap): string {
  const total = lap.artifacts.reduce((sum, a) => sum + a.bytes, 0);
  const artifacts = lap.artifacts
    .map(
      (a) =>
        `<tr><td><code>${escapeHtml(a.key)}</code></td><td><code class="sha">${escapeHtml(a.sha256)}</code></td><td class="num">${a.bytes.toLocaleString('en-US')}</td></tr>`,
    )
    .join('');
  return `<tr data-lap="${lap.lap}" data-label="${escapeHtml(lap.label)}"><td>${escapeHtml(lap.label)}</td><td class="num">${lap.seconds.toFixed(1)}</td><td class="num">${lap.attempts}${lap.failures ? ` (${lap.failures} failed)` : ''}</td><td>${escapeHtml(lap.started ?? '-')}</td><td>${escapeHtml(lap.finished ?? '-')}</td><td class="num">${lap.evaluations === null ? '-' : lap.evaluations.toLocaleString('en-US')}</td><td class="num">${lap.trainingEvaluations === null ? '-' : lap.trainingEvaluations.toLocaleString('en-US')}</td><td class="num guidance">${lap.guidance ? `${lap.guidance.breakdowns.toLocaleString('en-US')} / ${lap.guidance.residualMax.toExponential(2)} / ${lap.guidance.residualMean.toExponential(2)}` : '-'}</td><td><details open><summary>${lap.artifacts.length} artifacts, ${total.toLocaleString('en-US')} bytes</summary><table class="artifacts">${artifacts}</table></details></td></tr>`;
}

/** Every run's laps as numbers: the metrics beside what the laps cost so far. */
function lapTables(data: ReportData): string {
  const runs = data.equalCompute ? [...data.runs, data.equalCompute.run] : data.runs;
  const keys = data.metricNames;
  return runs
    .map((run) => {
      const rows = run.laps.map(
        (l) =>
          `<tr data-lap="${l.lap}" data-label="${escapeHtml(l.label)}"><td>${escapeHtml(l.label)}</td>${keys.map((k) => `<td class="num">${formatMetric(l.metrics, k)}</td>`).join('')}<td class="num">${formatCount(l.cumulativePasses)}</td><td class="num">${l.cumulativeSeconds.toFixed(1)}</td></tr>`,
      );
      return `<h3>${escapeHtml(run.method)}: <code>${escapeHtml(run.campaignId)}</code></h3>
<table class="per-lap" data-method="${escapeHtml(run.method)}" data-campaign="${escapeHtml(run.campaignId)}"><thead><tr><th>lap</th>${keys.map((k) => `<th>${escapeHtml(k)}</th>`).join('')}<th>network passes so far</th><th>activity seconds so far</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
    })
    .join('');
}

/**
 * Both methods at equal laps and at equal total compute (the cheaper one run on for the
 * extra laps), with the verdict per statistic in words.
 */
function equalComputeSection(data: ReportData): string {
  const equal = data.equalCompute;
  if (data.kind !== 'comparison') return '';
  if (!equal) {
    return `<section id="equal-compute"><h2>Equal laps and equal compute</h2><p class="note">No equal-compute run: the comparison ran with <code>--equal-laps</code>, or both methods spent the same passes.</p></section>`;
  }
  const keys = data.metricNames.filter((m) => m !== 'final_loss');
  const lastOf = (run: ReportRun) => [...run.laps].reverse().find((l) => l.label !== 'final');
  const row = (setting: string, run: ReportRun, lap: ReportLap | undefined) =>
    `<tr data-setting="${setting}" data-method="${escapeHtml(run.method)}"><td>${setting === 'laps' ? 'equal laps' : 'equal compute'}</td><td>${escapeHtml(run.method)}</td><td><code>${escapeHtml(run.campaignId)}</code></td><td class="num">${lap ? lap.lap : '-'}</td><td class="num">${formatCount(lap?.cumulativePasses ?? null)}</td><td class="num">${lap ? lap.cumulativeSeconds.toFixed(1) : '-'}</td>${keys.map((k) => `<td class="num">${lap ? formatMetric(lap.metrics, k) : '-'}</td>`).join('')}</tr>`;
  const rows = [
    ...data.runs.map((run) => row('laps', run, lastOf(run))),
    ...data.runs.map((run) =>
      run.method === equal.extended ? row('compute', equal.run, lastOf(equal.run)) : row('compute', run, lastOf(run)),
    ),
  ];
  const extendedLast = lastOf(equal.run);
  return `<section id="equal-compute"><h2>Equal laps and equal compute</h2>
<p class="note">The budget is ${escapeHtml(equal.against)}'s network passes through its last lap (${formatCount(equal.budgetPasses)}: training forward and backward, and E-step sampling; the final E-step and final prior are left out, being the same work for either). ${escapeHtml(equal.extended)} spent ${formatCount(equal.ownPasses)} in ${equal.fromLaps} laps, ${formatCount(equal.perLapPasses)} per lap, so it ran again as <code>${escapeHtml(equal.run.campaignId)}</code> with ${equal.laps} laps, the fewest that reach the budget (${formatCount(extendedLast?.cumulativePasses ?? null)} passes). Its first ${equal.reproducedLaps} laps reproduced the original run's metrics exactly (same seed and data).</p>
<p class="verdict" id="verdict-laps"><strong>At equal laps (lap ${equal.fromLaps}):</strong> ${escapeHtml(describeVerdicts(equal.verdicts.equalLaps))}.</p>
<p class="verdict" id="verdict-compute"><strong>At equal compute (${escapeHtml(equal.extended)} lap ${equal.laps} against ${escapeHtml(equal.against)} lap ${equal.fromLaps}):</strong> ${escapeHtml(describeVerdicts(equal.verdicts.equalCompute))}.</p>
<p class="note">Winners follow each statistic's sense: higher PSNR, SSIM, coverage and Inception Score; lower Sinkhorn divergence, curve distances and FID; consistency nearer m/2, what exact posterior samples score. The training loss is not compared (its scale depends on each method's time distribution).</p>
<table class="summary equal-compute"><thead><tr><th>setting</th><th>method</th><th>campaign</th><th>lap</th><th>network passes</th><th>activity seconds</th>${keys.map((k) => `<th>${escapeHtml(k)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></section>`;
}

function formatCount(n: number | null): string {
  return n === null ? '-' : n.toLocaleString('en-US');
}

function formatMetric(metrics: Metrics, key: string): string {
  const v = metrics[key];
  if (typeof v !== 'number') return '-';
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toPrecision(4);
}

function short(digest: string | null): string {
  return digest ? digest.slice(0, 12) : '-';
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; } h3 { font-size: 15px; }
.note { color: #555; font-size: 13px; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; }
figure.chart { margin: 0; padding: 8px; border: 1px solid #e3e3e3; border-radius: 4px; }
figure.chart figcaption { font-size: 12px; color: #444; }
.sample-row { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; margin-bottom: 8px; }
.sample-row .label { width: 150px; font-size: 13px; font-weight: bold; padding-top: 8px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
td.num { text-align: right; } code { font-size: 11px; } code.sha { word-break: break-all; }
table.artifacts td { border: none; border-bottom: 1px solid #eee; }
table.images { width: 100%; table-layout: fixed; } table.images thead th:first-child { width: 140px; }
.images img { max-width: 100%; border: 1px solid #ddd; } figure.image { margin: 0; }
pre { font-size: 12px; background: #f7f7f7; padding: 8px; }
p.verdict { font-size: 14px; }
`;

/** The page's script: plain browser JavaScript, reading the inline JSON, drawing with Chart.js. */
const CLIENT = `
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
  var charts = [];
  Chart.defaults.animation = false;
  Chart.defaults.font.family = '"DejaVu Sans", Arial, sans-serif';

  function panel(parent, caption, width, height) {
    var figure = document.createElement('figure');
    figure.className = 'chart';
    var canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    canvas.style.width = width + 'px';
    canvas.style.height = height + 'px';
    figure.appendChild(canvas);
    if (caption) {
      var text = document.createElement('figcaption');
      text.textContent = caption;
      figure.appendChild(text);
    }
    parent.appendChild(figure);
    return canvas;
  }

  function draw(canvas, config, kind, name) {
    var chart = new Chart(canvas, config);
    chart.canvas.dataset.kind = kind;
    chart.canvas.dataset.name = name;
    charts.push({ kind: kind, name: name, points: config.data.datasets.map(function (d) { return d.data.length; }) });
    return chart;
  }

  function useLog(values) {
    var positive = values.filter(function (v) { return v > 0; });
    if (positive.length !== values.length || positive.length < 2) return false;
    return Math.max.apply(null, positive) / Math.min.apply(null, positive) > 30;
  }

  function finite(v) { return typeof v === 'number' && isFinite(v); }

  var finalLap = null;
  data.runs.forEach(function (run) {
    run.laps.forEach(function (l) { if (l.label === 'final') finalLap = l.lap; });
  });

  function lapTick(value) {
    if (value === finalLap) return 'final';
    return Number.isInteger(value) ? String(value) : '';
  }

  function lineDataset(run, metric, xOf, color, label, dashed) {
    var points = [];
    run.laps.forEach(function (l) {
      var x = xOf(l);
      if (finite(l.metrics[metric]) && finite(x)) points.push({ x: x, y: l.metrics[metric], label: l.label });
    });
    return { label: label, data: points, showLine: true, borderColor: color, backgroundColor: color, pointRadius: 3, borderWidth: 2, borderDash: dashed ? [6, 4] : [] };
  }

  function lineDatasets(metric, xOf) {
    return data.runs.map(function (run, r) {
      return lineDataset(run, metric, xOf, COLORS[r % COLORS.length], run.method, false);
    });
  }

  // The equal-compute run, dashed in its method's colour, on the cost axes only: per lap it repeats the original.
  function costDatasets(metric, xOf) {
    var datasets = lineDatasets(metric, xOf);
    var equal = data.equalCompute;
    if (equal) {
      var r = data.runs.findIndex(function (run) { return run.method === equal.extended; });
      datasets.push(lineDataset(equal.run, metric, xOf, COLORS[Math.max(r, 0) % COLORS.length], equal.extended + ', ' + equal.laps + ' laps (equal compute)', true));
    }
    return datasets;
  }

  function values(datasets) {
    return datasets.reduce(function (all, d) { return all.concat(d.data.map(function (p) { return p.y; })); }, []);
  }

  function tooltip() {
    return { callbacks: { label: function (item) { return item.dataset.label + ' ' + item.raw.label + ': ' + item.raw.y; } } };
  }

  var lapCharts = document.getElementById('lap-charts');
  data.metricNames.forEach(function (metric) {
    var datasets = lineDatasets(metric, function (l) { return l.lap; });
    draw(panel(lapCharts, null, 420, 280), {
      type: 'scatter',
      data: { datasets: datasets },
      options: {
        responsive: false,
        plugins: { title: { display: true, text: metric }, tooltip: tooltip() },
        scales: {
          x: { type: 'linear', title: { display: true, text: 'lap' }, ticks: { stepSize: 1, callback: lapTick } },
          y: { type: useLog(values(datasets)) ? 'logarithmic' : 'linear', title: { display: true, text: metric } }
        }
      }
    }, 'lap', metric);
  });

  function costCharts(container, kind, xOf, axis) {
    ['sinkhorn', 'curve_distance_mean', 'curve_distance_median', 'consistency', 'psnr', 'ssim', 'fid'].filter(function (m) {
      return data.metricNames.indexOf(m) >= 0;
    }).forEach(function (metric) {
      var datasets = costDatasets(metric, xOf);
      draw(panel(container, null, 420, 280), {
        type: 'scatter',
        data: { datasets: datasets },
        options: {
          responsive: false,
          plugins: { title: { display: true, text: metric + ' vs ' + axis }, tooltip: tooltip() },
          scales: {
            x: { type: 'linear', title: { display: true, text: axis }, ticks: { callback: function (v) { return Number(v).toExponential(1); } } },
            y: { type: useLog(values(datasets)) ? 'logarithmic' : 'linear', title: { display: true, text: metric } }
          }
        }
      }, kind, metric);
    });
  }
  costCharts(document.getElementById('compute-charts'), 'compute', function (l) {
    return l.cumulativePasses === null || l.cumulativePasses === undefined ? NaN : l.cumulativePasses;
  }, 'cumulative network passes (training + sampling)');
  costCharts(document.getElementById('wall-charts'), 'wall', function (l) {
    return typeof l.cumulativeSeconds === 'number' ? l.cumulativeSeconds : NaN;
  }, 'cumulative activity seconds');

  var sampleCharts = document.getElementById('sample-charts');
  var dim = data.dim;
  var pairs = [];
  for (var a = 0; a + 1 < dim; a++) pairs.push([a, a + 1]);
  if (!pairs.length) pairs.push([0, 0]);
  function project(flat, count, i, j) {
    var out = new Array(count);
    for (var k = 0; k < count; k++) out[k] = { x: flat[k * dim + i], y: flat[k * dim + j] };
    return out;
  }
  data.runs.forEach(function (run) {
    if (!run.samples.length) return;
    var heading = document.createElement('h3');
    heading.textContent = run.method + ' (' + run.campaignId + ')';
    sampleCharts.appendChild(heading);
    run.samples.forEach(function (cloud) {
      var row = document.createElement('div');
      row.className = 'sample-row';
      var label = document.createElement('div');
      label.className = 'label';
      label.textContent = cloud.label + ' (' + cloud.count + ' samples)';
      row.appendChild(label);
      sampleCharts.appendChild(row);
      pairs.forEach(function (pair) {
        var datasets = [{ label: 'samples', data: project(cloud.points, cloud.count, pair[0], pair[1]), pointRadius: 1.5, borderWidth: 0, backgroundColor: 'rgba(31, 119, 180, 0.45)' }];
        if (data.curve) {
          datasets.push({ label: 'true curve', data: project(data.curve, data.curve.length / dim, pair[0], pair[1]), showLine: true, pointRadius: 0, borderWidth: 1.2, borderColor: '#d62728', backgroundColor: '#d62728' });
        }
        draw(panel(row, 'x' + pair[0] + ' vs x' + pair[1], 230, 230), {
          type: 'scatter',
          data: { datasets: datasets },
          options: {
            responsive: false,
            plugins: { legend: { display: false }, tooltip: { enabled: false } },
            scales: { x: { min: -2.4, max: 2.4, ticks: { maxTicksLimit: 5 } }, y: { min: -2.4, max: 2.4, ticks: { maxTicksLimit: 5 } } }
          }
        }, 'samples', run.method + '/' + cloud.label + '/x' + pair[0] + '-x' + pair[1]);
      });
    });
  });

  window.diffemReport = { ready: true, charts: charts };
  document.documentElement.dataset.ready = 'true';
})();
`;
