/**
 * Where a training step's time goes: runs the manifold and U-Net benchmarks under V8's
 * sampling profiler (`node --cpu-prof`, every thread) and prints, per workload, the share
 * of the training threads' samples spent in each kernel or function.
 *
 *   node dist/bench/profile.js [--out DIR] [--top 15]
 *
 * A sample is charged to the innermost frame that names a tfjs kernel (the wasm backend's
 * kernel functions, or ours under models/kernels/) or else to the innermost JavaScript
 * frame, so the time of wasm code and of OpenBLAS calls lands on the kernel that called
 * it. Samples count wall time on the sampled thread: on a loaded machine a thread waiting
 * for a core is charged to whatever it was running, so read shares from a quiet run.
 * Only samples under the training loop count: `run` in a shard thread
 * (models/training/shard-worker.ts) or `trainNetwork` on the main thread, plus the
 * thread's samples in native code, which V8 cannot tie to a JavaScript stack and books as
 * "(program)": that is where OpenBLAS's products (called through koffi) and V8's own work
 * land, so read that line as an upper bound on the GEMM time.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values } = parseArgs({
  options: { out: { type: 'string' }, top: { type: 'string', default: '15' } },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const ROOTS = new Set(['run', 'trainNetwork']);
/** Samples outside any JavaScript stack: native code (OpenBLAS through koffi) and V8's own work. */
const NATIVE = new Set(['(program)', '(garbage collector)']);
/** Generic dispatch frames that say nothing about which kernel ran. */
const DISPATCH = new Set(['ccall', 'kernelFunc', 'identity', 'runKernel', '']);

function isKernelFrame(frame: CallFrame): boolean {
  return (
    !DISPATCH.has(frame.functionName) &&
    !frame.functionName.startsWith('wasm-function') &&
    (frame.url.includes('tf-backend-wasm') || frame.url.includes('/kernels/'))
  );
}

function label(frame: CallFrame): string {
  return `${frame.functionName || '(anonymous)'} (${path.basename(frame.url) || 'native'})`;
}

/** Microseconds per label under the training roots of one profile. */
function charge(profile: CpuProfile, totals: Map<string, number>): number {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  let inScope = 0;
  profile.samples.forEach((id, i) => {
    let kernel: string | null = null;
    let rooted = false;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (kernel === null && isKernelFrame(frame)) kernel = label(frame);
      if (ROOTS.has(frame.functionName) && frame.url.includes('/training/')) rooted = true;
    }
    const leaf = byId.get(id)!.callFrame;
    const native = NATIVE.has(leaf.functionName);
    if (!rooted && !native) return;
    const dt = profile.timeDeltas[i] ?? 0;
    inScope += dt;
    const key = native ? `${leaf.functionName}: native code and V8` : (kernel ?? label(leaf));
    totals.set(key, (totals.get(key) ?? 0) + dt);
  });
  return inScope;
}

function profileOf(name: string, args: string[], out: string): void {
  const dir = path.join(out, name);
  const child = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (child.status !== 0) throw new Error(`${name}: benchmark exited with ${child.status}`);
  const totals = new Map<string, number>();
  let all = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    all += charge(JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as CpuProfile, totals);
  }
  const top = [...totals].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top));
  console.log(`\n${name}: ${(all / 1e6).toFixed(1)} s of training-thread samples (profiles in ${dir})`);
  for (const [key, us] of top) console.log(`  ${((100 * us) / all).toFixed(1).padStart(5)} %  ${key}`);
}

const out = values.out ?? mkdtempSync(path.join(tmpdir(), 'diffem-profile-'));
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} on this machine before profiling`,
);
profileOf(
  'manifold-mlp batch 512, 2 shards',
  [path.join(here, 'manifold.js'), '--batches', '512', '--reference', '/nonexistent'],
  out,
);
profileOf(
  'mnist-unet batch 8, 2 shards',
  [
    path.join(here, 'unet.js'),
    ...['--levels', '16,32,32', '--attention', '', '--batch', '8', '--shards', '2', '--torch', 'false'],
  ],
  out,
);
