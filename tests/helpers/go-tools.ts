/**
 * Go tools the deployment tests run (kustomize, the compose loader), each pinned in a Go module
 * under tools/ and built on demand from the Go module proxy into the git-ignored .cache/. The
 * binary's name carries a digest of the module's go.mod, go.sum and sources, so a version bump
 * or an edit rebuilds it, and an unchanged one is reused across runs.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './cli.js';

const run = promisify(execFile);

export interface GoTool {
  /** Folder under tools/ holding the tool's go.mod. */
  dir: string;
  /** The package to build, as `go build` takes it ('.' for the folder's own main). */
  pkg: string;
  /** The binary's name in .cache/. */
  name: string;
}

async function toolDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of (await readdir(dir)).filter((f) => /^go\.(mod|sum)$|\.go$/.test(f)).sort()) {
    hash.update(file).update(await readFile(path.join(dir, file)));
  }
  return hash.digest('hex').slice(0, 12);
}

const builds = new Map<string, Promise<string>>();

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

function execFailure(error: unknown): ExecResult | null {
  if (!(error instanceof Error) || typeof (error as { stderr?: unknown }).stderr !== 'string') return null;
  const { code, stdout, stderr } = error as Error & { code?: unknown; stdout?: string; stderr: string };
  return { code: typeof code === 'number' ? code : 1, stdout: stdout ?? '', stderr };
}

/** The tool's binary, built first when .cache/ lacks this version of it. */
export function goToolBinary(tool: GoTool): Promise<string> {
  let pending = builds.get(tool.name);
  if (pending === undefined) {
    pending = (async () => {
      const dir = path.join(REPO, 'tools', tool.dir);
      const binary = path.join(REPO, '.cache', `${tool.name}-${await toolDigest(dir)}`);
      try {
        await access(binary);
        return binary;
      } catch {
        // Not built yet on this machine.
      }
      await mkdir(path.dirname(binary), { recursive: true });
      const partial = `${binary}.${process.pid}.partial`;
      try {
        await run('go', ['build', '-o', partial, tool.pkg], {
          cwd: dir,
          env: { ...process.env, GOFLAGS: '-mod=mod' },
          timeout: 20 * 60_000,
          maxBuffer: 16 * 1024 * 1024,
        });
      } catch (error) {
        await rm(partial, { force: true });
        throw new Error(
          `cannot build ${tool.name} (go build ${tool.pkg} in tools/${tool.dir}; needs Go and the module proxy): ` +
            `${error instanceof Error ? error.message : String(error)}\n${execFailure(error)?.stderr ?? ''}`,
          { cause: error },
        );
      }
      await rename(partial, binary);
      return binary;
    })();
    builds.set(tool.name, pending);
    pending.catch(() => builds.delete(tool.name));
  }
  return pending;
}

/** Runs a built tool; a non-zero exit is returned, not thrown. */
export async function runGoTool(tool: GoTool, args: string[], cwd: string = REPO): Promise<ExecResult> {
  const binary = await goToolBinary(tool);
  try {
    const { stdout, stderr } = await run(binary, args, { cwd, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = execFailure(error);
    if (failure) return failure;
    throw error;
  }
}

/** kustomize, pinned in tools/kustomize/go.mod: about 2 minutes to build on 2 shared cores. */
export const KUSTOMIZE: GoTool = { dir: 'kustomize', pkg: 'sigs.k8s.io/kustomize/kustomize/v5', name: 'kustomize' };

/** tools/compose: the Compose Specification's loader (what `docker compose config` runs). */
export const COMPOSE_CONFIG: GoTool = { dir: 'compose', pkg: '.', name: 'compose-config' };
