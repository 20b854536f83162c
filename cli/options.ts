/** Checks of command-line values shared by the commands that use a campaign's models; each error names the option. */

export function parseCount(text: string, option: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n <= 0) {
    throw new Error(`${option} must be a positive integer, got '${text}'`);
  }
  return n;
}

export function parseSeed(text: string, option: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new Error(`${option} must be a non-negative integer, got '${text}'`);
  }
  return n;
}

/** Each output path with its kind, told by its extension. */
export function outputKinds<K extends string>(paths: string[], kinds: K[]): Array<{ path: string; kind: K }> {
  return paths.map((path) => {
    const kind = kinds.find((k) => path.toLowerCase().endsWith(`.${k}`));
    if (!kind) throw new Error(`--out ${path}: expected a file ending in ${kinds.map((k) => `.${k}`).join(' or ')}`);
    return { path, kind };
  });
}
