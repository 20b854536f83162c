/**
 * Inception Score (Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016):
 * with p(y | x) the classifier's softmax on a generated image and p(y) its mean over the set,
 *
 *     IS = exp( E_x KL( p(y | x) || p(y) ) ),
 *
 * 1 when every image gets the same prediction, K (the number of classes) when predictions
 * are confident and spread evenly over K classes. As in the reference implementation the
 * set is cut into `splits` equal parts, the score computed on each and reported as mean and
 * standard deviation (10 splits of 50,000 CIFAR-10 samples, the usual protocol). Float64
 * softmax with the max subtracted, so large logits do not overflow.
 */
export interface InceptionScore {
  mean: number;
  std: number;
}

export function inceptionScore(logits: ArrayLike<number>, n: number, classes: number, splits = 10): InceptionScore {
  if (logits.length !== n * classes)
    throw new RangeError(`inceptionScore: ${logits.length} logits for ${n}x${classes}`);
  if (!(Number.isInteger(splits) && splits >= 1 && splits <= n))
    throw new RangeError(`inceptionScore: ${splits} splits of ${n} images`);
  const p = new Float64Array(n * classes);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let k = 0; k < classes; k++) max = Math.max(max, logits[i * classes + k]);
    let total = 0;
    for (let k = 0; k < classes; k++) total += p[i * classes + k] = Math.exp(logits[i * classes + k] - max);
    for (let k = 0; k < classes; k++) p[i * classes + k] /= total;
  }
  const scores: number[] = [];
  for (let s = 0; s < splits; s++) {
    const lo = Math.floor((s * n) / splits);
    const hi = Math.floor(((s + 1) * n) / splits);
    const marginal = new Float64Array(classes);
    for (let i = lo; i < hi; i++) for (let k = 0; k < classes; k++) marginal[k] += p[i * classes + k] / (hi - lo);
    let kl = 0;
    for (let i = lo; i < hi; i++) {
      for (let k = 0; k < classes; k++) {
        const q = p[i * classes + k];
        if (q > 0) kl += q * (Math.log(q) - Math.log(marginal[k]));
      }
    }
    scores.push(Math.exp(kl / (hi - lo)));
  }
  const mean = scores.reduce((a, b) => a + b, 0) / splits;
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / splits);
  return { mean, std };
}
