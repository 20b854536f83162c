/**
 * PNG grids of images, drawn pixel by pixel into one RGB canvas and encoded by sharp, with
 * the panel titles rasterised from SVG (librsvg):
 *
 *   lap grids     observations | reconstructions | ground truth, side by side, the same
 *                 observations every lap (the first of the dataset), one per lap;
 *   campaign      observations | lap 0 (Gaussian) | final | ground truth;
 *   prior         a grid of final-prior samples.
 *
 * Images in [-2, 2] map linearly to bytes (clamped); grey images are drawn grey. In the
 * observations panel a masked pixel is drawn dark blue, so "missing" is never confused
 * with "black".
 */
import sharp from 'sharp';
import { DATA_MAX, DATA_MIN } from '../../models/datasets/dataset.js';
import type { NDArray } from '../../models/ndarray.js';

export interface GridPanel {
  title: string;
  /** [n, H, W, C] in [-2, 2]. */
  images: NDArray;
  /** [n, H, W, 1], 0 where the pixel is masked: drawn as MASKED_RGB. */
  masks?: NDArray;
}

export interface GridOptions {
  title: string;
  /** Images per panel (the first ones). */
  count: number;
  columns: number;
  /** Integer upscaling of each pixel. */
  scale?: number;
}

const MASKED_RGB = [24, 32, 110];
const GAP = 2;
const PANEL_GAP = 16;
const HEADER = 48;
const MARGIN = 12;

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function toByte(v: number): number {
  return Math.min(255, Math.max(0, Math.round(((v - DATA_MIN) / (DATA_MAX - DATA_MIN)) * 255)));
}

export async function imageGridPng(panels: GridPanel[], options: GridOptions): Promise<Uint8Array> {
  if (panels.length === 0) throw new RangeError('a grid needs at least one panel');
  const [, H, W, C] = panels[0].images.shape;
  const scale = options.scale ?? (H <= 32 ? 3 : H <= 64 ? 2 : 1);
  const count = Math.min(options.count, ...panels.map((p) => p.images.shape[0]));
  const columns = Math.min(options.columns, Math.max(1, count));
  const rows = Math.ceil(count / columns);
  const tileW = W * scale;
  const tileH = H * scale;
  const panelW = columns * tileW + (columns - 1) * GAP;
  const panelH = rows * tileH + (rows - 1) * GAP;
  const width = 2 * MARGIN + panels.length * panelW + (panels.length - 1) * PANEL_GAP;
  const height = HEADER + panelH + MARGIN;
  const canvas = Buffer.alloc(width * height * 3, 255);
  panels.forEach((panel, p) => {
    const left0 = MARGIN + p * (panelW + PANEL_GAP);
    for (let i = 0; i < count; i++) {
      const left = left0 + (i % columns) * (tileW + GAP);
      const top = HEADER + Math.floor(i / columns) * (tileH + GAP);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const pixel = (i * H + y) * W + x;
          let rgb: number[];
          if (panel.masks && panel.masks.data[pixel] === 0) rgb = MASKED_RGB;
          else if (C === 1) rgb = Array(3).fill(toByte(panel.images.data[pixel]));
          else rgb = [0, 1, 2].map((c) => toByte(panel.images.data[pixel * C + c]));
          for (let dy = 0; dy < scale; dy++) {
            let o = ((top + y * scale + dy) * width + left + x * scale) * 3;
            for (let dx = 0; dx < scale; dx++, o += 3) {
              canvas[o] = rgb[0];
              canvas[o + 1] = rgb[1];
              canvas[o + 2] = rgb[2];
            }
          }
        }
      }
    }
  });
  const labels = panels
    .map(
      (panel, p) =>
        `<text x="${MARGIN + p * (panelW + PANEL_GAP)}" y="${HEADER - 8}" font-size="13">${escapeXml(panel.title)}</text>`,
    )
    .join('');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEADER}" font-family="DejaVu Sans, sans-serif">` +
    `<text x="${MARGIN}" y="18" font-size="14" font-weight="bold">${escapeXml(options.title)}</text>${labels}</svg>`;
  const png = await sharp(canvas, { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}
