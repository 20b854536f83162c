/**
 * The manifold experiment's data: points of a smooth random 1-D curve in R^dim.
 *
 *     x_i(z) = sum_{k=1..K} a_ik / k^3 * sin(2 pi (k b_ik z + c_ik)),   a, b, c ~ U(0, 1),
 *
 * z ~ U(0, 1), then every dimension is min-max normalised and mapped to [-2, 2] by
 * x -> 4 (x - lo) / (hi - lo) - 2. The formula is followed as written: with b in (0, 1)
 * the curve need not close on itself.
 *
 * Unlike the reference code, which normalises over the samples it happens to draw,
 * lo / hi are the exact extremes of each coordinate over z in [0, 1] (a dense grid of z,
 * each extreme then refined by golden-section search), so the curve depends only on the
 * seed, never on n, and every sample lies in [-2, 2].
 *
 * Reference: Rozet et al., "Learning Diffusion Priors from Observations by Expectation
 * Maximization" (NeurIPS 2024), section 5.1; Hosseintabar et al., "DiffEM" (2025).
 */
import { ndarray, type NDArray } from './ndarray.js';
import type { Rng } from './rng.js';

export interface CurveParams {
  /** Amplitudes, [dim][terms]. */
  a: number[][];
  /** Frequencies, [dim][terms]. */
  b: number[][];
  /** Phases, [dim][terms]. */
  c: number[][];
  /** Per-dimension minimum of the raw curve over z in [0, 1]. */
  lo: number[];
  /** Per-dimension maximum of the raw curve over z in [0, 1]. */
  hi: number[];
}

/** Writes the normalised curve point at z into `out`. */
export type CurveFunction = (z: number, out: Float64Array) => Float64Array;

/**
 * Draws a curve: a, then b, then c, each [dim][terms] row-major from `rng.uniform()`.
 * `normalisationSamples` is the size of the z grid that locates each coordinate's extremes.
 */
export function drawCurve(rng: Rng, dim = 5, terms = 10, normalisationSamples = 65536): CurveParams {
  if (!(dim >= 1 && terms >= 1 && normalisationSamples >= 3)) {
    throw new RangeError(`drawCurve: need dim, terms >= 1 and normalisationSamples >= 3`);
  }
  const draw = (): number[][] => Array.from({ length: dim }, () => Array.from({ length: terms }, () => rng.uniform()));
  const a = draw();
  const b = draw();
  const c = draw();
  const folded = foldCoefficients(a, b, c);
  const lo: number[] = [];
  const hi: number[] = [];
  for (let i = 0; i < dim; i++) {
    const values = new Float64Array(normalisationSamples);
    for (let j = 0; j < normalisationSamples; j++) values[j] = rawCoordinate(folded, i, j / (normalisationSamples - 1));
    hi.push(refinedMaximum((z) => rawCoordinate(folded, i, z), values));
    lo.push(
      -refinedMaximum(
        (z) => -rawCoordinate(folded, i, z),
        values.map((v) => -v),
      ),
    );
  }
  return { a, b, c, lo, hi };
}

/** The normalised curve point at z, as a new array of length dim. */
export function curvePoint(params: CurveParams, z: number): Float64Array {
  return curveFunction(params)(z, new Float64Array(params.a.length));
}

/**
 * A fast evaluator of the normalised curve, with the coefficients folded once
 * (the metrics evaluate the curve millions of times).
 */
export function curveFunction(params: CurveParams): CurveFunction {
  const folded = foldCoefficients(params.a, params.b, params.c);
  checkBounds(params, folded.dim);
  const { dim } = folded;
  const lo = Float64Array.from(params.lo);
  const range = Float64Array.from(params.hi, (hi, i) => hi - params.lo[i]);
  // Same arithmetic as the normalisation in drawCurve, so the extremes map to exactly -2 and 2.
  return (z, out) => {
    for (let i = 0; i < dim; i++) out[i] = (4 * (rawCoordinate(folded, i, z) - lo[i])) / range[i] - 2;
    return out;
  };
}

/** The derivative dx/dz of the normalised curve at z, written into `out`. */
export function curveVelocity(params: CurveParams, z: number, out = new Float64Array(params.a.length)): Float64Array {
  const { amplitude, frequency, phase, dim, terms } = foldCoefficients(params.a, params.b, params.c);
  checkBounds(params, dim);
  for (let i = 0; i < dim; i++) {
    let sum = 0;
    for (let k = i * terms; k < (i + 1) * terms; k++) {
      sum += amplitude[k] * frequency[k] * Math.cos(frequency[k] * z + phase[k]);
    }
    out[i] = (4 * sum) / (params.hi[i] - params.lo[i]);
  }
  return out;
}

/** n points with z ~ U(0, 1); x is float32 [n, dim], z the latent position of each row. */
export function sampleManifold(rng: Rng, params: CurveParams, n: number): { x: NDArray; z: Float64Array } {
  const dim = params.a.length;
  const curve = curveFunction(params);
  const x = ndarray([n, dim]);
  const z = new Float64Array(n);
  const point = new Float64Array(dim);
  for (let j = 0; j < n; j++) {
    z[j] = rng.uniform();
    curve(z[j], point);
    for (let i = 0; i < dim; i++) x.data[j * dim + i] = point[i];
  }
  return { x, z };
}

interface FoldedCoefficients {
  /** a_ik / k^3, [dim * terms]. */
  amplitude: Float64Array;
  /** 2 pi k b_ik. */
  frequency: Float64Array;
  /** 2 pi c_ik. */
  phase: Float64Array;
  dim: number;
  terms: number;
}

function foldCoefficients(a: number[][], b: number[][], c: number[][]): FoldedCoefficients {
  const dim = a.length;
  const terms = a[0]?.length ?? 0;
  if (dim === 0 || terms === 0 || b.length !== dim || c.length !== dim) {
    throw new RangeError('CurveParams: a, b and c must be non-empty [dim][terms] arrays');
  }
  const amplitude = new Float64Array(dim * terms);
  const frequency = new Float64Array(dim * terms);
  const phase = new Float64Array(dim * terms);
  for (let i = 0; i < dim; i++) {
    if (a[i].length !== terms || b[i].length !== terms || c[i].length !== terms) {
      throw new RangeError(`CurveParams: dimension ${i} does not have ${terms} terms in a, b and c`);
    }
    for (let k = 0; k < terms; k++) {
      const order = k + 1;
      amplitude[i * terms + k] = a[i][k] / order ** 3;
      frequency[i * terms + k] = 2 * Math.PI * order * b[i][k];
      phase[i * terms + k] = 2 * Math.PI * c[i][k];
    }
  }
  return { amplitude, frequency, phase, dim, terms };
}

function checkBounds(params: CurveParams, dim: number): void {
  if (params.lo.length !== dim || params.hi.length !== dim) {
    throw new RangeError(`CurveParams: lo and hi need ${dim} entries`);
  }
  for (let i = 0; i < dim; i++) {
    if (!(params.hi[i] > params.lo[i])) throw new RangeError(`CurveParams: hi[${i}] must exceed lo[${i}]`);
  }
}

/** Raw (unnormalised) coordinate i of the curve at z. */
function rawCoordinate(folded: FoldedCoefficients, i: number, z: number): number {
  const { amplitude, frequency, phase, terms } = folded;
  let sum = 0;
  for (let k = i * terms; k < (i + 1) * terms; k++) sum += amplitude[k] * Math.sin(frequency[k] * z + phase[k]);
  return sum;
}

/**
 * max over z in [0, 1] of f, given f on a uniform grid of [0, 1]: the best grid value, refined
 * by golden-section search around every grid local maximum that comes close to it (so a
 * near-tie between two peaks cannot hide the true maximum).
 */
function refinedMaximum(f: (z: number) => number, values: Float64Array): number {
  const samples = values.length;
  const step = 1 / (samples - 1);
  let best = -Infinity;
  for (let j = 0; j < samples; j++) best = Math.max(best, values[j]);
  // A grid misses a peak by at most step^2 |f''| / 8, and |f''| <= 4 pi^2 sum_k 1/k < 2000 for
  // any practical number of terms, so only local maxima within that slack can hold the maximum.
  const slack = 2000 * step * step;
  let refined = best;
  for (let j = 0; j < samples; j++) {
    const isLocalMax = (j === 0 || values[j] >= values[j - 1]) && (j === samples - 1 || values[j] >= values[j + 1]);
    if (!isLocalMax || values[j] < best - slack) continue;
    refined = Math.max(refined, goldenSectionMax(f, Math.max(0, (j - 1) * step), Math.min(1, (j + 1) * step)));
  }
  return refined;
}

const INVERSE_PHI = (Math.sqrt(5) - 1) / 2;

/** Maximum of a unimodal f on [lo, hi], endpoints included. */
function goldenSectionMax(f: (z: number) => number, lo: number, hi: number): number {
  let a = lo;
  let b = hi;
  let x1 = b - INVERSE_PHI * (b - a);
  let x2 = a + INVERSE_PHI * (b - a);
  let f1 = f(x1);
  let f2 = f(x2);
  for (let iteration = 0; iteration < 80 && b - a > 1e-15; iteration++) {
    if (f1 < f2) {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + INVERSE_PHI * (b - a);
      f2 = f(x2);
    } else {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - INVERSE_PHI * (b - a);
      f1 = f(x1);
    }
  }
  return Math.max(f1, f2, f(lo), f(hi));
}
