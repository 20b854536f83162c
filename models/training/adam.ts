/**
 * Adam (Kingma & Ba, ICLR 2015) with global-norm gradient clipping (Pascanu et al. 2013)
 * and an exponential moving average of the weights (Polyak averaging; the EMA weights are
 * what a lap hands on, docs/method.md M-step):
 *
 *     g <- g * min(1, clip / ||g||_2)
 *     m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
 *     w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)   (Kingma & Ba, Sec. 2, efficient form)
 *     ema <- d_t * ema + (1 - d_t) * w,   d_t = min(decay, (1 + t) / (10 + t))
 *
 * The warm-up of d_t (as in TensorFlow's ExponentialMovingAverage with num_updates) keeps
 * a short run's EMA from being dominated by its starting weights: with a fixed 0.999, an
 * EMA after 600 steps still holds 55 % of the initialisation. That ramp reaches a decay d
 * only after (10 d - 1) / (1 - d) steps (8,990 for 0.999), longer than most laps, so with
 * `emaWarmup` W the ramp ends at step W and d_t = decay from then on.
 * The state is plain named arrays so a checkpoint holds it and training resumes exactly.
 *
 * With the fast kernels on wasm (`fusedLayersEnabled`) the update runs as one JavaScript
 * pass per tensor over the weights' own heap storage, with m, v and the EMA in plain arrays:
 * through tfjs ops it was ~12 dispatched ops per tensor and a quarter of a manifold training
 * step (`node --cpu-prof` on bench/manifold.ts). The arithmetic is the same, in float64 per
 * element, so results match the op path to float32 rounding, not bit for bit; a campaign's
 * `runtime.kernels` is part of its numerics either way.
 */
import * as tf from '../tf.js';
import { ndarray } from '../ndarray.js';
import type { ParamMap } from '../denoisers/mlp.js';
import { fusedLayersEnabled } from '../kernels/layer-norm-silu.js';
import { asWasmBackend, f32 } from '../kernels/wasm.js';

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Global-norm clip; 0 or Infinity disables it. */
  clip: number;
  /** EMA decay; 0 disables the EMA. */
  emaDecay: number;
  /** Steps of the EMA's warm-up ramp; after them the decay is `emaDecay` (default: the ramp never ends). */
  emaWarmup?: number;
}

export interface OptimizerState {
  step: number;
  m: ParamMap;
  v: ParamMap;
  ema: ParamMap | null;
}

/** m, v and the EMA of one tensor as plain arrays (the in-place path). */
interface Moments {
  m: Float32Array;
  v: Float32Array;
  ema: Float32Array | null;
}

/** A gradient as a tensor, or as a flat array in the variable's element order. */
export type Gradient = tf.Tensor | Float32Array;

export class Adam {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly ema = new Map<string, tf.Variable>();
  /** Set on the in-place path instead of the three maps above. */
  private readonly moments: Map<string, Moments> | null;
  step = 0;

  constructor(
    private readonly variables: Map<string, tf.Variable>,
    readonly options: AdamOptions,
    state?: OptimizerState,
  ) {
    this.step = state?.step ?? 0;
    this.moments = fusedLayersEnabled() ? new Map() : null;
    if (this.moments) {
      for (const [name, w] of variables) {
        // The weights are written in place below, so each must own its storage: a variable
        // may share it with the tensor it was made from.
        const own = tf.tensor(w.dataSync() as Float32Array, w.shape);
        w.assign(own);
        own.dispose();
        const restore = (map: ParamMap | null | undefined) =>
          map?.[name] ? Float32Array.from(map[name].data) : new Float32Array(w.size);
        const ema =
          options.emaDecay > 0 ? (state?.ema?.[name] ? restore(state.ema) : (w.dataSync() as Float32Array)) : null;
        this.moments.set(name, { m: restore(state?.m), v: restore(state?.v), ema });
      }
      return;
    }
    for (const [name, w] of variables) {
      const restore = (map: ParamMap | null | undefined) =>
        map?.[name] ? tf.tensor(map[name].data, w.shape) : tf.zerosLike(w);
      this.m.set(name, tf.variable(restore(state?.m), false));
      this.v.set(name, tf.variable(restore(state?.v), false));
      if (options.emaDecay > 0) {
        this.ema.set(
          name,
          tf.variable(state?.ema?.[name] ? tf.tensor(state.ema[name].data, w.shape) : w.clone(), false),
        );
      }
    }
  }

  /** Applies one update; returns the gradient norm before clipping. */
  apply(gradients: Record<string, Gradient>, lr: number): number {
    const { beta1, beta2, epsilon, clip, emaDecay } = this.options;
    this.step += 1;
    const t = this.step;
    const stepSize = (lr * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t);
    const ramped = t > (this.options.emaWarmup ?? Infinity);
    const decay = ramped ? emaDecay : Math.min(emaDecay, (1 + t) / (10 + t));
    const clipScale = (norm: number) => (clip > 0 && Number.isFinite(clip) && norm > clip ? clip / norm : 1);
    if (this.moments) {
      const flat: Record<string, Float32Array> = {};
      let squares = 0;
      for (const name of this.variables.keys()) {
        const g = gradients[name];
        const values = g instanceof Float32Array ? g : (g.dataSync() as Float32Array);
        flat[name] = values;
        for (let i = 0; i < values.length; i++) squares += values[i] * values[i];
      }
      const norm = Math.sqrt(squares);
      const scale = clipScale(norm);
      const backend = asWasmBackend(tf.backend());
      for (const [name, w] of this.variables) {
        const g = flat[name];
        const { m, v, ema } = this.moments.get(name)!;
        const W = f32(backend, w);
        for (let i = 0; i < W.length; i++) {
          const gi = g[i] * scale;
          const mi = beta1 * m[i] + (1 - beta1) * gi;
          const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
          m[i] = mi;
          v[i] = vi;
          W[i] -= (stepSize * mi) / (Math.sqrt(vi) + epsilon);
        }
        if (ema) for (let i = 0; i < W.length; i++) ema[i] = decay * ema[i] + (1 - decay) * W[i];
      }
      return norm;
    }
    const grads: Record<string, tf.Tensor> = {};
    for (const [name, variable] of this.variables) {
      const g = gradients[name];
      grads[name] = g instanceof Float32Array ? tf.tensor(g, variable.shape) : g;
    }
    const normTensor = tf.tidy(() => tf.addN(Object.values(grads).map((g) => g.square().sum())).sqrt());
    const norm = normTensor.dataSync()[0];
    normTensor.dispose();
    const scale = clipScale(norm);
    tf.tidy(() => {
      for (const [name, w] of this.variables) {
        const g = scale === 1 ? grads[name] : grads[name].mul(scale);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(m.mul(beta1).add(g.mul(1 - beta1)));
        v.assign(v.mul(beta2).add(g.square().mul(1 - beta2)));
        w.assign(w.sub(m.mul(stepSize).div(v.sqrt().add(epsilon))));
        const e = this.ema.get(name);
        if (e) e.assign(e.mul(decay).add(w.mul(1 - decay)));
      }
    });
    for (const [name, g] of Object.entries(gradients)) if (g instanceof Float32Array) grads[name].dispose();
    return norm;
  }

  state(): OptimizerState {
    if (this.moments) {
      const pick = (key: 'm' | 'v' | 'ema'): ParamMap => {
        const out: ParamMap = {};
        for (const [name, w] of this.variables)
          out[name] = ndarray(w.shape, Float32Array.from(this.moments!.get(name)![key]!));
        return out;
      };
      return { step: this.step, m: pick('m'), v: pick('v'), ema: this.options.emaDecay > 0 ? pick('ema') : null };
    }
    const read = (map: Map<string, tf.Variable>): ParamMap => {
      const out: ParamMap = {};
      for (const [name, t] of map) out[name] = ndarray(t.shape, t.dataSync() as Float32Array);
      return out;
    };
    return { step: this.step, m: read(this.m), v: read(this.v), ema: this.ema.size ? read(this.ema) : null };
  }

  dispose(): void {
    for (const map of [this.m, this.v, this.ema]) for (const t of map.values()) t.dispose();
  }
}

export function defaultAdam(partial: Partial<AdamOptions> = {}): AdamOptions {
  return { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, clip: 1, emaDecay: 0, ...partial };
}
