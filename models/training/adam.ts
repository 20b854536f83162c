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
 */
import * as tf from '../tf.js';
import { ndarray } from '../ndarray.js';
import type { ParamMap } from '../denoisers/mlp.js';

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

export class Adam {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly ema = new Map<string, tf.Variable>();
  step = 0;

  constructor(
    private readonly variables: Map<string, tf.Variable>,
    readonly options: AdamOptions,
    state?: OptimizerState,
  ) {
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
    this.step = state?.step ?? 0;
  }

  /** Applies one update; returns the gradient norm before clipping. */
  apply(grads: Record<string, tf.Tensor>, lr: number): number {
    const { beta1, beta2, epsilon, clip, emaDecay } = this.options;
    this.step += 1;
    const t = this.step;
    const normTensor = tf.tidy(() => tf.addN(Object.values(grads).map((g) => g.square().sum())).sqrt());
    const norm = normTensor.dataSync()[0];
    normTensor.dispose();
    const scale = clip > 0 && Number.isFinite(clip) && norm > clip ? clip / norm : 1;
    const stepSize = (lr * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t);
    const ramped = t > (this.options.emaWarmup ?? Infinity);
    const decay = ramped ? emaDecay : Math.min(emaDecay, (1 + t) / (10 + t));
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
    return norm;
  }

  state(): OptimizerState {
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
