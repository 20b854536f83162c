/**
 * The real kustomize, for rendering k8s/ overlays in tests: built from the Go module proxy at
 * the version pinned in tools/kustomize/go.mod into the git-ignored .cache/, once per machine
 * (about 2 minutes on 2 shared cores with an empty module cache; then the binary is reused).
 */
import { execFile } from 'node:child_process';
import { access, mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './cli.js';

const run = promisify(execFile);

export const KUSTOMIZE_TOOL_DIR = path.join(REPO, 'tools', 'kustomize');
const MODULE = 'sigs.k8s.io/kustomize/kustomize/v5';

export async function pinnedKustomizeVersion(): Promise<string> {
  const goMod = await readFile(path.join(KUSTOMIZE_TOOL_DIR, 'go.mod'), 'utf8');
  const match = new RegExp(`${MODULE.replaceAll('.', '\\.')} (v\\S+)`).exec(goMod);
  if (!match) throw new Error(`tools/kustomize/go.mod does not require ${MODULE}`);
  return match[1];
}

let built: Promise<string> | null = null;

/** The kustomize binary's path, building it first when the cache lacks it. */
export function kustomizeBinary(): Promise<string> {
  built ??= (async () => {
    const version = await pinnedKustomizeVersion();
    const binary = path.join(REPO, '.cache', `kustomize-${version}`);
    try {
      await access(binary);
      return binary;
    } catch {
      // Not built yet on this machine.
    }
    await mkdir(path.dirname(binary), { recursive: true });
    const partial = `${binary}.${process.pid}.partial`;
    try {
      await run('go', ['build', '-o', partial, MODULE], {
        cwd: KUSTOMIZE_TOOL_DIR,
        env: { ...process.env, GOFLAGS: '-mod=mod' },
        timeout: 20 * 60_000,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (error) {
      await rm(partial, { force: true });
      const stderr = isExecError(error) ? error.stderr : '';
      throw new Error(
        `cannot build kustomize ${version} (go build ${MODULE} in tools/kustomize; needs Go and the module proxy): ` +
          `${error instanceof Error ? error.message : String(error)}\n${stderr}`,
        { cause: error },
      );
    }
    await rename(partial, binary);
    return binary;
  })();
  built.catch(() => (built = null));
  return built;
}

function isExecError(error: unknown): error is Error & { stderr: string } {
  return error instanceof Error && typeof (error as { stderr?: unknown }).stderr === 'string';
}

export interface KustomizeResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kustomize with `args` in `cwd`; a non-zero exit is returned, not thrown. */
export async function kustomize(args: string[], cwd: string = REPO): Promise<KustomizeResult> {
  const binary = await kustomizeBinary();
  try {
    const { stdout, stderr } = await run(binary, args, { cwd, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    if (isExecError(error)) {
      const code = (error as { code?: unknown }).code;
      return {
        code: typeof code === 'number' ? code : 1,
        stdout: (error as { stdout?: string }).stdout ?? '',
        stderr: error.stderr,
      };
    }
    throw error;
  }
}
