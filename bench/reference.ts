/**
 * The PyTorch side of the benchmarks: runs a reference script under Debian's python3-torch
 * and hands back its JSON line, or says why there is none. A reference on a degraded BLAS
 * (the scripts refuse to run without OpenBLAS) gives no figure at all, so no flattering
 * ratio is ever printed against it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const PYTHON = '/usr/bin/python3';
export const INSTALL_HINT =
  'install the reference with `bash bench/setup` (apt-get install python3-torch libopenblas0-pthread)';

export type Reference = { ok: true; figures: Record<string, unknown> } | { ok: false; reason: string };

export function runReference(script: string, args: string[], timeoutMs = 600_000): Reference {
  if (!existsSync(script)) return { ok: false, reason: `reference script ${script} not found` };
  if (!existsSync(PYTHON)) return { ok: false, reason: `${PYTHON} not found; ${INSTALL_HINT}` };
  const result = spawnSync(PYTHON, [script, ...args], { encoding: 'utf8', timeout: timeoutMs });
  const line = result.stdout?.trim().split('\n').pop() ?? '';
  if (result.status === 0 && line.startsWith('{')) {
    return { ok: true, figures: JSON.parse(line) as Record<string, unknown> };
  }
  const why = (result.stderr || result.error?.message || 'no output').trim().split('\n').pop();
  return { ok: false, reason: `${why}; ${INSTALL_HINT}` };
}

/** A figure of ours over the reference's, or null when either is missing. */
export function ratio(ours: number | undefined, theirs: unknown): number | null {
  if (ours === undefined || typeof theirs !== 'number' || !(theirs > 0)) return null;
  return Number((ours / theirs).toFixed(3));
}
