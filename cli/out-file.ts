/**
 * Writing a file the user named with `--out`: the path is checked (no NUL byte, no name over
 * 255 bytes, an existing directory to hold it) and the bytes go to a temporary file in that
 * directory which is then renamed over the target. rename() replaces a symbolic link at the
 * target instead of writing through it, so a link planted at the --out path cannot send the
 * report somewhere else, and a reader never sees half a file.
 */
import { randomBytes } from 'node:crypto';
import { lstat, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

export class OutPathError extends Error {
  readonly type = 'InvalidOutPath' as const;
  override readonly name = 'OutPathError';
}

const NAME_MAX = 255;

export async function writeOutFile(target: string, body: string | Uint8Array): Promise<string> {
  if (target === '' || target.includes('\0'))
    throw new OutPathError(`--out ${JSON.stringify(target)}: not a file path`);
  const resolved = path.resolve(target);
  const name = path.basename(resolved);
  if (Buffer.byteLength(name) > NAME_MAX) {
    throw new OutPathError(`--out ${JSON.stringify(`${name.slice(0, 40)}…`)}: file name longer than ${NAME_MAX} bytes`);
  }
  const dir = path.dirname(resolved);
  const parent = await stat(dir).catch(() => null);
  if (!parent?.isDirectory()) throw new OutPathError(`--out ${target}: directory ${dir} does not exist`);
  const existing = await lstat(resolved).catch(() => null);
  if (existing?.isDirectory()) throw new OutPathError(`--out ${target}: is a directory`);
  const temp = path.join(dir, `.${name.slice(0, 100)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, body, { flag: 'wx' });
    await rename(temp, resolved);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return resolved;
}
