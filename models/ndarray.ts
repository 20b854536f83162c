/**
 * The one array type that crosses module boundaries outside tfjs: a dense row-major
 * float32 buffer with its shape. Stored artifacts (safetensors) hold exactly this.
 */
export interface NDArray {
  shape: number[];
  data: Float32Array;
}

export function ndarray(shape: number[], data?: Float32Array): NDArray {
  const size = shape.reduce((a, b) => a * b, 1);
  if (data && data.length !== size) {
    throw new RangeError(`data has ${data.length} elements, shape [${shape.join(', ')}] needs ${size}`);
  }
  return { shape: [...shape], data: data ?? new Float32Array(size) };
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Rows [start, end) of the leading axis, as a view (no copy). */
export function sliceRows(a: NDArray, start: number, end: number): NDArray {
  const row = sizeOf(a.shape.slice(1));
  return { shape: [end - start, ...a.shape.slice(1)], data: a.data.subarray(start * row, end * row) };
}

/** Concatenates along the leading axis. */
export function concatRows(parts: NDArray[]): NDArray {
  if (parts.length === 0) throw new RangeError('concatRows needs at least one array');
  const tail = parts[0].shape.slice(1);
  let rows = 0;
  for (const p of parts) {
    if (p.shape.slice(1).join(',') !== tail.join(',')) {
      throw new RangeError(`cannot stack [${p.shape.join(', ')}] under [${parts[0].shape.join(', ')}]`);
    }
    rows += p.shape[0];
  }
  const out = ndarray([rows, ...tail]);
  let offset = 0;
  for (const p of parts) {
    out.data.set(p.data, offset);
    offset += p.data.length;
  }
  return out;
}

/** Gathers rows by index along the leading axis. */
export function takeRows(a: NDArray, index: ArrayLike<number>): NDArray {
  const row = sizeOf(a.shape.slice(1));
  const out = ndarray([index.length, ...a.shape.slice(1)]);
  for (let i = 0; i < index.length; i++) out.data.set(a.data.subarray(index[i] * row, (index[i] + 1) * row), i * row);
  return out;
}
