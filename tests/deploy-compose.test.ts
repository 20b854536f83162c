/**
 * docker/: the compose file and the Dockerfile, read as a deployment would use them. Docker is
 * not available on the machines that run this suite, so the images are not built here; what is
 * checked is what broke deployments before: unpinned images, a setup step that raced the
 * server and hid its failures (its shell script is run here against a scripted `temporal`),
 * GPU reservations, the data volume, shutdown grace, the Node base and the CUDA stacks. The
 * file is loaded by the Compose Specification's own loader (compose-go, what `docker compose
 * config` runs; tools/compose), built on demand like kustomize.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { TASK_QUEUES } from '../workflows/temporal.js';
import { REPO } from './helpers/cli.js';
import { COMPOSE_CONFIG, goToolBinary, runGoTool } from './helpers/go-tools.js';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; target?: string };
  command?: string[] | string;
  entrypoint?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }> | string[];
  volumes?: string[];
  stop_grace_period?: string;
  profiles?: string[];
  healthcheck?: { test: string[] };
  deploy?: { resources?: { reservations?: { devices?: Array<{ driver: string; capabilities: string[] }> } } };
}

interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

let compose: Compose;
let dockerfile: string;
let workspace: string;

before(async () => {
  compose = parse(await readFile(path.join(REPO, 'docker', 'docker-compose.yml'), 'utf8')) as Compose;
  dockerfile = await readFile(path.join(REPO, 'docker', 'Dockerfile'), 'utf8');
  workspace = await mkdtemp(path.join(tmpdir(), 'diffem-deploy-compose-'));
});

after(async () => {
  if (workspace) await rm(workspace, { recursive: true, force: true });
});

/** `${VAR:-default}` as compose resolves it with VAR unset. */
function withDefaults(text: string): string {
  return text.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
}

function commandOf(service: Service): string[] {
  const command = service.command ?? [];
  return Array.isArray(command) ? command : command.split(/\s+/);
}

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function workers(): Array<[string, Service]> {
  return Object.entries(compose.services).filter(([, s]) => commandOf(s)[0] === 'worker');
}

function seconds(duration: string | undefined): number {
  const match = /^(\d+)(s|m)$/.exec(duration ?? '');
  assert.ok(match, `'${String(duration)}' is not a duration this test reads`);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
}

/** Runs a compose `command` script (`$$` is compose's escaped `$`) with `bin` first on PATH. */
function runSetupScript(
  script: string,
  bin: string,
  env: Record<string, string>,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', script.replaceAll('$$', '$')], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/**
 * A `temporal` CLI stand-in: `namespace describe` fails until the call numbered
 * NAMESPACE_READY_AFTER, `search-attribute list` prints EXISTING, `create` appends its
 * arguments to CALLS and exits with CREATE_EXIT. `sleep` is a no-op so waits cost nothing.
 */
async function scriptedTemporal(): Promise<string> {
  const bin = await mkdtemp(path.join(workspace, 'bin-'));
  await writeFile(
    path.join(bin, 'temporal'),
    `#!/bin/sh
case "$*" in
  *"namespace describe"*)
    n=$(cat "$STATE" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$STATE"
    [ "$n" -ge "$NAMESPACE_READY_AFTER" ] && { echo "NamespaceInfo.Name default"; exit 0; }
    echo "namespace default not found" >&2; exit 1 ;;
  *"search-attribute list"*) printf '%s\\n' "$EXISTING" ;;
  *"search-attribute create"*) echo "$*" >> "$CALLS"; exit "$CREATE_EXIT" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
`,
  );
  await writeFile(path.join(bin, 'sleep'), '#!/bin/sh\nexit 0\n');
  await chmod(path.join(bin, 'temporal'), 0o755);
  await chmod(path.join(bin, 'sleep'), 0o755);
  return bin;
}

const COMPOSE_FILE = path.join(REPO, 'docker', 'docker-compose.yml');

async function loadCompose(
  file: string,
  profiles: string[],
): Promise<{ code: number; project: Compose | null; stderr: string }> {
  const result = await runGoTool(COMPOSE_CONFIG, [...profiles.flatMap((p) => ['-profile', p]), file]);
  return {
    code: result.code,
    project: result.code === 0 ? (JSON.parse(result.stdout) as Compose) : null,
    stderr: result.stderr,
  };
}

describe('docker compose', () => {
  before(async () => {
    await goToolBinary(COMPOSE_CONFIG);
  });

  test('the Compose Specification loader accepts the file under each profile', async () => {
    const expected: Record<string, string[]> = {
      'cpu-only': ['worker-cpu', 'worker-gpu-on-cpu'],
      gpu: ['worker-cpu', 'worker-gpu-sample', 'worker-gpu-train'],
      tools: ['cli', 'worker-cpu'],
    };
    for (const [profile, workersOf] of Object.entries(expected)) {
      const { code, project, stderr } = await loadCompose(COMPOSE_FILE, [profile]);
      assert.equal(code, 0, `--profile ${profile}: ${stderr}`);
      const names = Object.keys(project!.services);
      for (const always of ['postgresql', 'temporal', 'temporal-setup', 'temporal-ui', 'minio', 'minio-setup']) {
        assert.ok(names.includes(always), `--profile ${profile} lacks ${always}`);
      }
      assert.deepEqual(
        names.filter((n) => n.startsWith('worker-') || n === 'cli').sort(),
        workersOf,
        `--profile ${profile}`,
      );
      // Interpolated with an empty environment: every image resolves to a tag.
      for (const [name, service] of Object.entries(project!.services)) {
        assert.match(service.image ?? '', /^[\w./-]+:[\w.-]+$/, name);
      }
    }
  });

  test('the loader rejects a misspelt field and a dependency on a missing service', async () => {
    const text = await readFile(COMPOSE_FILE, 'utf8');
    const misspelt = path.join(workspace, 'misspelt.yml');
    await writeFile(misspelt, text.replace('    stop_grace_period: 90s\n', '    stop_grace_periods: 90s\n'));
    const bad = await loadCompose(misspelt, ['cpu-only']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /stop_grace_periods/);

    const dangling = path.join(workspace, 'dangling.yml');
    await writeFile(
      dangling,
      text.replace(
        '      temporal-setup:\n        condition: service_completed_successfully',
        '      temporal-setupp:\n        condition: service_completed_successfully',
      ),
    );
    const missing = await loadCompose(dangling, ['cpu-only']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /temporal-setupp/);
  });

  test('every image is pinned to a version (never latest or a bare name)', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      assert.ok(service.image, `${name} has no image`);
      const image = withDefaults(service.image);
      const tag = /:([^/:]+)$/.exec(image)?.[1];
      assert.ok(tag, `${name}: '${image}' has no tag`);
      assert.notEqual(tag, 'latest', `${name}: '${image}'`);
      if (!image.startsWith('diffem-')) {
        // Third-party images: a version, not a moving major alone.
        assert.match(tag, /\d+\.\d+|RELEASE\.\d{4}-/, `${name}: '${image}' is not pinned to a release`);
      }
    }
  });

  test('the setup step waits for the namespace, registers what is missing, and fails loudly', async () => {
    const setup = compose.services['temporal-setup'];
    const script = (setup.command as string[])[0];
    assert.doesNotMatch(script, /search-attribute create[^\n]*\|\| true/);
    const bin = await scriptedTemporal();
    const base = { STATE: path.join(bin, 'state'), CALLS: path.join(bin, 'calls'), NAMESPACE: 'default' };

    // Namespace registered on the 4th look; one attribute already there.
    const ok = await runSetupScript(script, bin, {
      ...base,
      NAMESPACE_READY_AFTER: '4',
      EXISTING: 'DiffemLap Int',
      CREATE_EXIT: '0',
    });
    assert.equal(ok.code, 0, ok.out);
    assert.equal((ok.out.match(/waiting for namespace/g) ?? []).length, 3);
    const created = (await readFile(base.CALLS, 'utf8')).trim().split('\n');
    assert.deepEqual(
      created.map((line) => /--name (\S+)/.exec(line)?.[1]),
      ['DiffemCampaignId', 'DiffemDatasetDigest', 'DiffemHeadline'],
    );

    // A refused registration fails the step.
    const refused = await runSetupScript(script, bin, {
      ...base,
      STATE: path.join(bin, 'state2'),
      NAMESPACE_READY_AFTER: '1',
      EXISTING: '',
      CREATE_EXIT: '1',
    });
    assert.notEqual(refused.code, 0);

    // No namespace at all: gives up with a message instead of waiting forever.
    const never = await runSetupScript(script, bin, {
      ...base,
      STATE: path.join(bin, 'state3'),
      NAMESPACE_READY_AFTER: '100000',
      EXISTING: '',
      CREATE_EXIT: '0',
    });
    assert.notEqual(never.code, 0);
    assert.match(never.out, /namespace 'default' not registered/);
  });

  test('workers start only after a successful setup, with grace beyond their shutdown grace', () => {
    const polled = new Set<string>();
    for (const [name, service] of workers()) {
      const args = commandOf(service);
      const grace = seconds(flag(args, '--shutdown-grace'));
      assert.ok(seconds(service.stop_grace_period) > grace, `${name}: stop_grace_period <= --shutdown-grace`);
      assert.ok(flag(args, '--health-port'), `${name}: no --health-port`);
      assert.match(JSON.stringify(service.healthcheck?.test ?? []), /readyz/, `${name}: no health check on /readyz`);
      const queue = flag(args, '--queue');
      if (queue === 'diffem-gpu') polled.add(TASK_QUEUES.train).add(TASK_QUEUES.sample);
      else if (queue) polled.add(queue);
    }
    assert.deepEqual([...polled].sort(), Object.values(TASK_QUEUES).sort());
    const cpu = compose.services['worker-cpu'].depends_on as Record<string, { condition: string }>;
    assert.equal(cpu['temporal-setup'].condition, 'service_completed_successfully');
    assert.equal(cpu['minio-setup'].condition, 'service_completed_successfully');
  });

  test('GPUs are reserved by the GPU-stack workers only, each built from its own stage', () => {
    for (const [name, service] of workers()) {
      const args = commandOf(service);
      const queue = flag(args, '--queue');
      const gpu =
        service.deploy?.resources?.reservations?.devices?.some((d) => d.capabilities.includes('gpu')) ?? false;
      const gpuStack = queue === 'diffem-gpu-train' || queue === 'diffem-gpu-sample';
      assert.equal(gpu, gpuStack, `${name}: GPU reservation`);
      if (gpuStack) {
        assert.equal(flag(args, '--device'), 'cuda', name);
        assert.equal(service.build?.target, queue.replace('diffem-', ''), `${name}: build target`);
        assert.ok(withDefaults(service.image ?? '').startsWith(`${queue}:`), `${name}: image`);
        assert.deepEqual(service.profiles, ['gpu']);
      }
    }
  });

  test('datasets and Inception weights have a volume on the CPU worker, and every worker a cache', () => {
    assert.ok('data' in compose.volumes && 'cache' in compose.volumes);
    assert.ok(compose.services['worker-cpu'].volumes?.includes('data:/data'));
    for (const [name, service] of workers()) assert.ok(service.volumes?.includes('cache:/cache'), name);
  });
});

describe('Dockerfile', () => {
  const stages = (): Map<string, string> => {
    const map = new Map<string, string>();
    for (const match of dockerfile.matchAll(/^FROM (\S+) AS (\S+)$/gm)) map.set(match[2], match[1]);
    return map;
  };
  const args = (): Map<string, string> =>
    new Map([...dockerfile.matchAll(/^ARG ([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
  const resolveImage = (from: string): string =>
    from.replace(/^\$\{([A-Z_]+)\}$/, (_, name: string) => args().get(name) ?? from);
  const stageText = (name: string): string => {
    const start = dockerfile.search(new RegExp(`^FROM \\S+ AS ${name}$`, 'm'));
    const rest = dockerfile.slice(start + 1);
    const next = rest.search(/^FROM /m);
    return next < 0 ? rest : rest.slice(0, next);
  };

  test('needs nothing from Docker Hub beyond its bases, and runs on a supported Node LTS', () => {
    assert.doesNotMatch(dockerfile, /^# syntax=/m);
    assert.match(resolveImage(stages().get('build') ?? ''), /^node:(22|24)\.\d+\.\d+-/);
    assert.equal(resolveImage(stages().get('cpu') ?? ''), resolveImage(stages().get('build') ?? ''));
    // The last stage is what a plain `docker build` produces: the CPU image.
    assert.equal([...stages().keys()].at(-1), 'cpu');
  });

  test('training runs on tfjs-node-gpu over CUDA 11 / cuDNN 8, sampling on ORT CUDA 12 / cuDNN 9', () => {
    assert.match(resolveImage(stages().get('gpu-train') ?? ''), /^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-/);
    assert.match(resolveImage(stages().get('gpu-sample') ?? ''), /^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-/);
    const tfjsCore = '4.22.0';
    assert.equal(args().get('TFJS_NODE_GPU_VERSION'), tfjsCore);
    assert.match(
      stageText('deps-train'),
      /npm install[^\n]*\\\n\s*"@tensorflow\/tfjs-node-gpu@\$\{TFJS_NODE_GPU_VERSION\}"/,
    );
    assert.match(stageText('deps-sample'), /ONNXRUNTIME_NODE_INSTALL=cuda12/);
    assert.match(stageText('gpu-train'), /--from=deps-train \/app\/node_modules/);
    assert.match(stageText('gpu-sample'), /--from=deps-sample \/app\/node_modules/);
    // Non-root, with writable data and cache directories.
    for (const stage of ['cpu', 'gpu-train', 'gpu-sample']) {
      assert.match(stageText(stage), /chown 1000:1000 \/data \/cache/, stage);
      assert.match(stageText(stage), /^USER 1000:1000$/m, stage);
    }
  });

  test('the pinned tfjs-node-gpu matches the tfjs-core the project uses', async () => {
    const lock = JSON.parse(await readFile(path.join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string }>;
    };
    assert.equal(lock.packages['node_modules/@tensorflow/tfjs-core']?.version, args().get('TFJS_NODE_GPU_VERSION'));
  });

  test('.dockerignore keeps dependencies, builds, credentials and history out of the context', async () => {
    const ignored = (await readFile(path.join(REPO, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim());
    for (const entry of ['.git', 'node_modules', 'dist', '.cache', '**/*.env'])
      assert.ok(ignored.includes(entry), entry);
  });
});
