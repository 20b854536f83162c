import assert from 'node:assert/strict';
import { test } from 'node:test';

import { asImages, asRows, concatOperators, sliceOperators } from '../models/channels/image-operators.js';
import type { ImageOperators } from '../models/channels/image.js';
import { ndarray } from '../models/ndarray.js';

test('operator batches slice and concatenate back to themselves; rows and images share bytes', () => {
  const masks = ndarray(
    [5, 2, 2, 1],
    Float32Array.from({ length: 20 }, (_, q) => (q % 3 === 0 ? 0 : 1)),
  );
  const mask: ImageOperators = { kind: 'mask', masks };
  const parts = [sliceOperators(mask, 0, 2), sliceOperators(mask, 2, 5)];
  assert.deepEqual(concatOperators(parts), mask);

  const blur: ImageOperators = {
    kind: 'blur',
    sigmas: Float64Array.of(0.5, 1, 1.5),
    kernels: ndarray(
      [3, 3],
      Float32Array.from({ length: 9 }, (_, q) => q / 9),
    ),
  };
  const back = concatOperators([sliceOperators(blur, 0, 1), sliceOperators(blur, 1, 3)]);
  assert.deepEqual(back, blur);
  assert.throws(() => concatOperators([mask, blur]), /mixed operator kinds/);
  assert.throws(() => concatOperators([]), /no operators/);

  const rows = asRows(masks);
  assert.deepEqual(rows.shape, [5, 4]);
  assert.equal(rows.data, masks.data);
  assert.deepEqual(asImages(rows, { height: 2, width: 2, channels: 1 }), masks);
});
