/**
 * GMRES for a batch of independent linear systems M_i u_i = b_i (i = 1..n, each of size m),
 * with M known only through one batched product v -> M v per iteration. Iteration k
 * returns the u in the Krylov space span{b, M b, ..., M^{k-1} b} that minimises |b - M u|:
 *
 *     Arnoldi:  M V_k = V_{k+1} H_k   (V orthonormal, modified Gram-Schmidt)
 *     u_k = V_k z,   z = argmin |beta e_1 - H_k z|   (Givens rotations),  beta = |b|
 *
 * so the residual never grows, and M need not be symmetric: what a learned Jacobian gives
 * (J^T != J), where conjugate gradients can diverge. For a symmetric positive-definite M
 * it reaches the same exact solution after m iterations. A row stops once its residual is
 * below `tolerance` relative to |b_i|, or on a breakdown (the Krylov space is invariant,
 * so its solution is exact); the loop ends when every row has stopped.
 * Reference: Saad & Schultz, "GMRES: A Generalized Minimal Residual Algorithm for Solving
 * Nonsymmetric Linear Systems" (SIAM J. Sci. Stat. Comput., 1986); Saad, "Iterative
 * Methods for Sparse Linear Systems" (2003), Sec. 6.5.
 */
import type { BatchedMatVec, KrylovOptions, KrylovResult } from './krylov.js';

export async function gmres(
  matvec: BatchedMatVec,
  b: Float64Array,
  rows: number,
  size: number,
  options: KrylovOptions,
): Promise<KrylovResult> {
  if (b.length !== rows * size) throw new RangeError(`gmres: b has ${b.length} values, expected ${rows}x${size}`);
  if (!(Number.isInteger(options.iterations) && options.iterations >= 0)) {
    throw new RangeError(`gmres: iterations must be a non-negative integer, got ${options.iterations}`);
  }
  const k = Math.min(options.iterations, size);
  const tolerance = options.tolerance ?? 1e-12;
  // Per row: basis V [(k+1), size], Hessenberg H [(k+1), k] (rotated into R), rotations, rhs g.
  const V = Array.from({ length: k + 1 }, () => new Float64Array(rows * size));
  const H = new Float64Array(rows * (k + 1) * k);
  const cs = new Float64Array(rows * k);
  const sn = new Float64Array(rows * k);
  const g = new Float64Array(rows * (k + 1));
  const beta = new Float64Array(rows);
  const steps = new Int32Array(rows);
  const active = new Uint8Array(rows);
  let running = 0;
  for (let i = 0; i < rows; i++) {
    let norm = 0;
    for (let j = i * size; j < (i + 1) * size; j++) norm += b[j] * b[j];
    beta[i] = Math.sqrt(norm);
    g[i * (k + 1)] = beta[i];
    if (beta[i] > 0) {
      for (let j = i * size; j < (i + 1) * size; j++) V[0][j] = b[j] / beta[i];
      active[i] = 1;
      running++;
    }
  }
  const h = (i: number, r: number, c: number) => i * (k + 1) * k + r * k + c;
  const residuals = [beta.some((v) => v > 0) ? 1 : 0];
  let iterations = 0;
  for (let c = 0; c < k && running > 0; c++) {
    const w = await matvec(V[c]);
    iterations++;
    if (w.length !== rows * size) throw new RangeError(`gmres: M v returned ${w.length} values`);
    let worst = 0;
    for (let i = 0; i < rows; i++) {
      if (!active[i]) {
        if (beta[i] > 0) worst = Math.max(worst, Math.abs(g[i * (k + 1) + steps[i]]) / beta[i]);
        continue;
      }
      const lo = i * size;
      const hi = lo + size;
      for (let r = 0; r <= c; r++) {
        let dot = 0;
        for (let j = lo; j < hi; j++) dot += V[r][j] * w[j];
        H[h(i, r, c)] = dot;
        for (let j = lo; j < hi; j++) w[j] -= dot * V[r][j];
      }
      let norm = 0;
      for (let j = lo; j < hi; j++) norm += w[j] * w[j];
      norm = Math.sqrt(norm);
      if (!Number.isFinite(norm) || !H.subarray(h(i, 0, c), h(i, c, c) + 1).every(Number.isFinite)) {
        // A non-finite product: keep the last finite iterate.
        active[i] = 0;
        running--;
        worst = Math.max(worst, Math.abs(g[i * (k + 1) + steps[i]]) / beta[i]);
        continue;
      }
      // Earlier rotations, then a new one that zeroes the subdiagonal entry `norm`.
      for (let r = 0; r < c; r++) {
        const a = H[h(i, r, c)];
        const bb = H[h(i, r + 1, c)];
        H[h(i, r, c)] = cs[i * k + r] * a + sn[i * k + r] * bb;
        H[h(i, r + 1, c)] = -sn[i * k + r] * a + cs[i * k + r] * bb;
      }
      const diag = H[h(i, c, c)];
      const radius = Math.hypot(diag, norm);
      const cos = radius > 0 ? diag / radius : 1;
      const sin = radius > 0 ? norm / radius : 0;
      cs[i * k + c] = cos;
      sn[i * k + c] = sin;
      H[h(i, c, c)] = radius;
      const gi = i * (k + 1);
      g[gi + c + 1] = -sin * g[gi + c];
      g[gi + c] = cos * g[gi + c];
      steps[i] = c + 1;
      const relative = Math.abs(g[gi + c + 1]) / beta[i];
      worst = Math.max(worst, relative);
      const breakdown = norm <= 1e-14 * radius;
      if (relative <= tolerance || breakdown || radius === 0) {
        active[i] = 0;
        running--;
      } else {
        for (let j = lo; j < hi; j++) V[c + 1][j] = w[j] / norm;
      }
    }
    residuals.push(worst);
  }
  // u = V_k z with R z = g (back substitution on each row's own number of steps).
  const x = new Float64Array(rows * size);
  const z = new Float64Array(k);
  for (let i = 0; i < rows; i++) {
    const s = steps[i];
    for (let r = s - 1; r >= 0; r--) {
      let acc = g[i * (k + 1) + r];
      for (let c = r + 1; c < s; c++) acc -= H[h(i, r, c)] * z[c];
      const pivot = H[h(i, r, r)];
      z[r] = pivot !== 0 ? acc / pivot : 0;
    }
    for (let r = 0; r < s; r++) for (let j = i * size; j < (i + 1) * size; j++) x[j] += z[r] * V[r][j];
  }
  return { x, iterations, residuals, breakdowns: 0 };
}
