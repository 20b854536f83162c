/**
 * Conjugate gradients for a batch of independent symmetric positive-definite systems
 * M_i u_i = b_i (i = 1..n, each of size m), where M is known only through one batched
 * product v -> M v per iteration (for guidance, one network pass each):
 *
 *     u_0 = 0, r_0 = p_0 = b
 *     alpha = (r.r) / (p.M p),  u += alpha p,  r -= alpha M p
 *     beta = (r'.r') / (r.r),   p = r' + beta p
 *
 * with scalars per row. In exact arithmetic row i is solved after at most m iterations;
 * fewer give the minimiser of the M-norm error over the Krylov space, which is what
 * moment-matching guidance uses with 1 to 3 iterations. A row stops updating once its
 * residual falls below `tolerance` relative to |b_i|. When M is known to satisfy
 * M >= floor I (for guidance, s_y^2 I plus a covariance) and a direction p shows a
 * curvature p.M p not above `curvatureFloor` |p|^2, M is not what it should be along p (a
 * learned Jacobian need not be positive definite). Rather than abandon the row (which
 * would leave it unguided at that step), the product is clamped to its floor along p,
 * M p := floor p, i.e. the covariance part is taken as zero in that direction, and the
 * iteration goes on with that bounded step; each clamp counts as a breakdown. Without a
 * floor (plain CG on a matrix that should be positive definite) a non-positive curvature
 * has no bounded step, and the row stops. The loop ends early when every row has stopped.
 * Reference: Hestenes & Stiefel (1952); Golub & Van Loan, "Matrix Computations", Sec. 11.3.
 */
import type { BatchedMatVec, KrylovOptions, KrylovResult } from './krylov.js';

export interface ConjugateGradientOptions extends KrylovOptions {
  /**
   * What a clamped direction adds to u: 'solve' (default) its step, so u solves the clamped
   * system; 'drop' nothing, for callers that multiply u by the very matrix whose curvature
   * failed (guidance multiplies it by the learned covariance, zero along a clamped direction
   * in the clamped model but not in the network), while the residual still counts the
   * direction as solved and the iteration goes on.
   */
  clampedStep?: 'solve' | 'drop';
  /**
   * Least curvature p.M p / p.p that M is known to have (default 0: M must be positive
   * definite). A smaller one is clamped to it (see above).
   */
  curvatureFloor?: number;
}

export async function conjugateGradient(
  matvec: BatchedMatVec,
  b: Float64Array,
  rows: number,
  size: number,
  options: ConjugateGradientOptions,
): Promise<KrylovResult> {
  if (b.length !== rows * size)
    throw new RangeError(`conjugateGradient: b has ${b.length} values, expected ${rows}x${size}`);
  if (!(Number.isInteger(options.iterations) && options.iterations >= 0)) {
    throw new RangeError(`conjugateGradient: iterations must be a non-negative integer, got ${options.iterations}`);
  }
  const tolerance = options.tolerance ?? 1e-12;
  const floor = options.curvatureFloor ?? 0;
  const keepClamped = (options.clampedStep ?? 'solve') === 'solve';
  const x = new Float64Array(rows * size);
  const r = Float64Array.from(b);
  const p = Float64Array.from(b);
  const rr = rowDots(r, r, rows, size);
  const bNorm = rr.map(Math.sqrt);
  const active = new Uint8Array(rows);
  const residuals = [maxRelative(rr, bNorm)];
  let running = 0;
  for (let i = 0; i < rows; i++) {
    active[i] = Math.sqrt(rr[i]) > tolerance * bNorm[i] && bNorm[i] > 0 ? 1 : 0;
    running += active[i];
  }
  let iterations = 0;
  let breakdowns = 0;
  while (iterations < options.iterations && running > 0) {
    // Stopped rows multiply a zero direction, so they cost nothing extra and stay put.
    for (let i = 0; i < rows; i++) if (!active[i]) p.fill(0, i * size, (i + 1) * size);
    const mp = await matvec(p);
    iterations++;
    if (mp.length !== rows * size) throw new RangeError(`conjugateGradient: M v returned ${mp.length} values`);
    const curvature = rowDots(p, mp, rows, size);
    const lengths = rowDots(p, p, rows, size);
    for (let i = 0; i < rows; i++) {
      if (!active[i]) continue;
      const healthy = curvature[i] > floor * lengths[i] && curvature[i] > 0 && Number.isFinite(curvature[i]);
      if (!healthy) breakdowns++;
      if (!healthy && !(floor > 0 && lengths[i] > 0)) {
        active[i] = 0;
        running--;
        continue;
      }
      // Clamped: M p := floor p along this direction (zero covariance), so the step stays bounded.
      const alpha = healthy ? rr[i] / curvature[i] : rr[i] / (floor * lengths[i]);
      let next = 0;
      const step = healthy || keepClamped ? alpha : 0;
      for (let j = i * size; j < (i + 1) * size; j++) {
        x[j] += step * p[j];
        r[j] -= alpha * (healthy ? mp[j] : floor * p[j]);
        next += r[j] * r[j];
      }
      const beta = next / rr[i];
      rr[i] = next;
      for (let j = i * size; j < (i + 1) * size; j++) p[j] = r[j] + beta * p[j];
      if (Math.sqrt(next) <= tolerance * bNorm[i]) {
        active[i] = 0;
        running--;
      }
    }
    residuals.push(maxRelative(rr, bNorm));
  }
  return { x, iterations, residuals, breakdowns };
}

function rowDots(a: Float64Array, b: Float64Array, rows: number, size: number): Float64Array {
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let acc = 0;
    for (let j = i * size; j < (i + 1) * size; j++) acc += a[j] * b[j];
    out[i] = acc;
  }
  return out;
}

function maxRelative(rr: Float64Array, bNorm: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < rr.length; i++) if (bNorm[i] > 0) worst = Math.max(worst, Math.sqrt(rr[i]) / bNorm[i]);
  return worst;
}
