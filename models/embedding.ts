/**
 * Sinusoidal embedding of the noise level, as in the transformer position encoding
 * (Vaswani et al. 2017) applied to log sigma:
 *
 *     freq_j = exp(-ln(1e4) j / half),  j = 0..half-1
 *     embed(log sigma) = [sin(log sigma * freq), cos(log sigma * freq)]
 *
 * The frequencies are a constant of the network, shared by the tfjs model and its ONNX export.
 */
export function embeddingFrequencies(dim: number): Float32Array {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) {
    throw new RangeError(`embedding dimension must be an even integer >= 2, got ${dim}`);
  }
  const half = dim / 2;
  const freqs = new Float32Array(half);
  for (let j = 0; j < half; j++) freqs[j] = Math.exp((-Math.log(1e4) * j) / half);
  return freqs;
}
