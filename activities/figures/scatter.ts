/**
 * The paper's manifold figure: reconstructions against the true curve, in 2-D projections
 * (coordinate pairs (0,1), (1,2), ...), one row per lap. Drawn as SVG, rasterised to PNG by
 * sharp (librsvg), so the figure needs no browser.
 */
import sharp from 'sharp';
import type { NDArray } from '../../models/ndarray.js';

export interface ScatterRow {
  label: string;
  points: NDArray;
}

export interface ScatterFigure {
  title: string;
  /** Dense points along the true curve, drawn as a line. */
  curve: NDArray;
  rows: ScatterRow[];
  /** Most points drawn per panel (the first ones). */
  maxPoints?: number;
}

const PANEL = 220;
const MARGIN = 28;
const RANGE = 2.4;

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function scatterSvg(figure: ScatterFigure): string {
  const dim = figure.curve.shape[1];
  const pairs = Array.from({ length: Math.max(1, dim - 1) }, (_, i) => [i, Math.min(i + 1, dim - 1)] as const);
  const width = MARGIN + pairs.length * (PANEL + MARGIN);
  const height = 40 + figure.rows.length * (PANEL + MARGIN);
  const maxPoints = figure.maxPoints ?? 2048;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${MARGIN}" y="24" font-size="16">${escapeXml(figure.title)}</text>`,
  ];
  figure.rows.forEach((row, r) => {
    const top = 40 + r * (PANEL + MARGIN);
    pairs.forEach(([a, b], p) => {
      const left = MARGIN + p * (PANEL + MARGIN);
      const sx = (v: number) => left + ((v + RANGE) / (2 * RANGE)) * PANEL;
      const sy = (v: number) => top + PANEL - ((v + RANGE) / (2 * RANGE)) * PANEL;
      parts.push(`<rect x="${left}" y="${top}" width="${PANEL}" height="${PANEL}" fill="none" stroke="#999"/>`);
      const n = Math.min(row.points.shape[0], maxPoints);
      const d = row.points.shape[1];
      const dots: string[] = [];
      for (let i = 0; i < n; i++) {
        const x = row.points.data[i * d + a];
        const y = row.points.data[i * d + b];
        if (Math.abs(x) > RANGE || Math.abs(y) > RANGE) continue;
        dots.push(`M${sx(x).toFixed(1)} ${sy(y).toFixed(1)}h0`);
      }
      parts.push(
        `<path d="${dots.join('')}" stroke="#1f77b4" stroke-opacity="0.45" stroke-width="2.2" stroke-linecap="round"/>`,
      );
      const line: string[] = [];
      for (let i = 0; i < figure.curve.shape[0]; i++) {
        const x = figure.curve.data[i * dim + a];
        const y = figure.curve.data[i * dim + b];
        line.push(`${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)} ${sy(y).toFixed(1)}`);
      }
      parts.push(`<path d="${line.join('')}" fill="none" stroke="#d62728" stroke-width="1.2"/>`);
      parts.push(`<text x="${left + 4}" y="${top + PANEL + 16}" font-size="11">x${a} vs x${b}</text>`);
    });
    parts.push(
      `<text x="${MARGIN + 4}" y="${top + 14}" font-size="12" font-weight="bold">${escapeXml(row.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function scatterPng(figure: ScatterFigure): Promise<Buffer> {
  return sharp(Buffer.from(scatterSvg(figure)))
    .png()
    .toBuffer();
}
