/**
 * A folder of PNG or JPEG images (e.g. CelebA crops) as [n, H, W, C] in [-2, 2].
 *
 * Each image is auto-oriented from its EXIF tag, scaled so that it covers H x W and centre
 * cropped (`fit: 'cover'`, the usual CelebA preparation), or squeezed to H x W (`'fill'`);
 * then reduced to grey (C = 1, Rec. 601 luma) or sRGB (C = 3), alpha dropped. Files load in
 * name order, so a dataset's index is stable; hidden files and subfolders are skipped, and
 * any other file that is not a decodable PNG or JPEG is an error naming it.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

import { bytesToImages, type ImageDataset } from './dataset.js';
import { DatasetFileError } from './errors.js';

export interface ImageFolderOptions {
  height: number;
  width: number;
  channels: 1 | 3;
  /** Default 'cover' (scale and centre crop). */
  fit?: 'cover' | 'fill';
  /** Load at most this many files (the first in name order). */
  limit?: number;
}

export interface ImageFolderDataset extends ImageDataset {
  /** The file of each image, in order. */
  files: string[];
}

const FORMATS = new Set(['png', 'jpeg']);

export async function loadImageFolder(dir: string, options: ImageFolderOptions): Promise<ImageFolderDataset> {
  const { height, width, channels } = options;
  if (!(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0)) {
    throw new RangeError(`image size must be positive integers, got ${height}x${width}`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError(`channels must be 1 or 3, got ${String(channels)}`);
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  const files = names.slice(0, options.limit ?? names.length).map((name) => join(dir, name));
  if (files.length === 0) throw new DatasetFileError(dir, `${dir}: no image files`);

  const pixels = height * width * channels;
  const bytes = new Uint8Array(files.length * pixels);
  for (let i = 0; i < files.length; i++) bytes.set(await readImage(files[i], options), i * pixels);
  return { images: bytesToImages(bytes, [files.length, height, width, channels]), labels: null, files };
}

async function readImage(path: string, options: ImageFolderOptions): Promise<Buffer> {
  const { height, width, channels } = options;
  let format: string | undefined;
  try {
    format = (await sharp(path).metadata()).format;
  } catch (error) {
    throw new DatasetFileError(
      path,
      `${path}: not a readable image: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (!format || !FORMATS.has(format))
    throw new DatasetFileError(path, `${path}: ${format ?? 'unknown'} image, expected PNG or JPEG`);
  try {
    let pipeline = sharp(path)
      .rotate()
      .resize(width, height, { fit: options.fit ?? 'cover', position: 'centre' })
      .removeAlpha();
    pipeline = channels === 1 ? pipeline.grayscale() : pipeline.toColourspace('srgb');
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== channels || info.width !== width || info.height !== height) {
      throw new Error(
        `decoded to ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x${channels}`,
      );
    }
    return data;
  } catch (error) {
    throw new DatasetFileError(
      path,
      `${path}: cannot decode: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
