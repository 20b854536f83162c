/**
 * k8s/: renders each overlay with the real kustomize (tests/helpers/go-tools.ts), validates
 * every manifest against the Kubernetes API schemas (and the KEDA / External Secrets CRDs), and
 * checks what a cluster needs of them: one image name per deployment, no committed credentials,
 * probes on the worker health endpoint, GPUs only where the GPU stacks run, KEDA triggers on the
 * queues each worker polls, and termination grace above the worker's shutdown grace.
 */
import assert from 'node:assert/strict';
import { access, cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { TASK_QUEUES } from '../workflows/temporal.js';
import { REPO } from './helpers/cli.js';
import { manifestProblems } from './helpers/k8s-schema.js';
import { goToolBinary, KUSTOMIZE, runGoTool } from './helpers/go-tools.js';

type Doc = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
};

interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
}

interface PodSpec {
  terminationGracePeriodSeconds?: number;
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: object; persistentVolumeClaim?: { claimName: string } }>;
}

interface Deployment extends Doc {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

const K8S = path.join(REPO, 'k8s');
const OVERLAYS = ['gpu', 'cpu-only'] as const;
const TEST_CREDENTIALS = 'AWS_ACCESS_KEY_ID=deploy-test-key\nAWS_SECRET_ACCESS_KEY=deploy-test-secret\n';

let workspace: string;

/** A copy of k8s/ without any local credentials file, so renders depend on the committed tree only. */
async function copyOfK8s(withCredentials: boolean): Promise<string> {
  const dir = await mkdtemp(path.join(workspace, 'k8s-'));
  await cp(K8S, dir, { recursive: true, filter: (source) => path.basename(source) !== 's3.env' });
  if (withCredentials) await writeFile(path.join(dir, 'components', 's3-env-file', 's3.env'), TEST_CREDENTIALS);
  return dir;
}

function parseDocs(text: string): Doc[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw new Error(`kustomize output does not parse: ${d.errors[0].message}`);
    return d.toJS() as Doc;
  });
}

async function render(dir: string, overlay: string): Promise<Doc[]> {
  const result = await runGoTool(KUSTOMIZE, ['build', path.join(dir, 'overlays', overlay)]);
  assert.equal(result.code, 0, `kustomize build overlays/${overlay} failed:\n${result.stderr}`);
  return parseDocs(result.stdout);
}

const rendered = new Map<string, Doc[]>();

function docsOf(overlay: string, kind?: string): Doc[] {
  const docs = rendered.get(overlay);
  assert.ok(docs, `overlay ${overlay} was not rendered`);
  return kind ? docs.filter((d) => d.kind === kind) : docs;
}

function deployments(overlay: string): Deployment[] {
  return docsOf(overlay, 'Deployment') as Deployment[];
}

function worker(d: Deployment): Container {
  const container = d.spec.template.spec.containers.find((c) => c.name === 'worker');
  assert.ok(container, `${d.metadata.name} has no container 'worker'`);
  return container;
}

function flag(args: readonly string[] | undefined, name: string): string | undefined {
  const i = (args ?? []).indexOf(name);
  return i >= 0 ? args![i + 1] : undefined;
}

/** The task queues `diffem worker --queue X` polls (engines/temporal/worker.ts). */
function queuesPolled(queue: string | undefined): string[] {
  switch (queue) {
    case 'diffem-cpu':
      return [TASK_QUEUES.cpu];
    case 'diffem-gpu-train':
      return [TASK_QUEUES.train];
    case 'diffem-gpu-sample':
      return [TASK_QUEUES.sample];
    case 'diffem-gpu':
      return [TASK_QUEUES.train, TASK_QUEUES.sample];
    default:
      throw new Error(`unexpected --queue ${String(queue)}`);
  }
}

function seconds(duration: string | undefined): number {
  const match = /^(\d+)(ms|s|m)$/.exec(duration ?? '');
  assert.ok(match, `--shutdown-grace '${String(duration)}' is not a duration this test reads`);
  const n = Number(match[1]);
  return match[2] === 'ms' ? n / 1000 : match[2] === 'm' ? n * 60 : n;
}

function gpuRequest(c: Container): unknown {
  return c.resources?.limits?.['nvidia.com/gpu'] ?? c.resources?.requests?.['nvidia.com/gpu'];
}

before(async () => {
  workspace = await mkdtemp(path.join(tmpdir(), 'diffem-deploy-k8s-'));
  await goToolBinary(KUSTOMIZE);
  const dir = await copyOfK8s(true);
  for (const overlay of OVERLAYS) rendered.set(overlay, await render(dir, overlay));
});

after(async () => {
  if (workspace) await rm(workspace, { recursive: true, force: true });
});

describe('k8s overlays', () => {
  test('every rendered manifest validates against the Kubernetes API and CRD schemas', async () => {
    for (const overlay of OVERLAYS) {
      const problems = (await Promise.all(docsOf(overlay).map(manifestProblems))).flat();
      assert.deepEqual(problems, [], `overlays/${overlay}`);
      const kinds = new Set(docsOf(overlay).map((d) => d.kind));
      for (const kind of [
        'Namespace',
        'ConfigMap',
        'Secret',
        'PersistentVolumeClaim',
        'Job',
        'Deployment',
        'PodDisruptionBudget',
        'ScaledObject',
      ]) {
        assert.ok(kinds.has(kind), `overlays/${overlay} renders no ${kind}`);
      }
    }
  });

  test('the schema check rejects a misspelt field and a wrong type', async () => {
    const deployment = structuredClone(deployments('gpu')[0]);
    const container = worker(deployment) as Container & Record<string, unknown>;
    container.livenesProbe = container.livenessProbe;
    delete container.livenessProbe;
    (deployment.spec as Record<string, unknown>).replicas = 'two';
    const problems = await manifestProblems(deployment);
    assert.ok(
      problems.some((p) => p.includes('unknown field /spec/template/spec/containers/0/livenesProbe')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => /replicas must be integer/.test(p)),
      problems.join('\n'),
    );
    assert.deepEqual(await manifestProblems({ apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' } }), [
      'Thing/x: no schema packaged for apiVersion example.com/v1',
    ]);
  });

  test('everything lives in the diffem Namespace', () => {
    for (const overlay of OVERLAYS) {
      const namespaces = docsOf(overlay, 'Namespace');
      assert.deepEqual(
        namespaces.map((n) => n.metadata.name),
        ['diffem'],
      );
      for (const doc of docsOf(overlay).filter((d) => d.kind !== 'Namespace')) {
        assert.equal(doc.metadata.namespace, 'diffem', `${doc.kind}/${doc.metadata.name} in overlays/${overlay}`);
      }
    }
  });

  test('each deployment has its own image name, so one can be set without the others', async () => {
    const gpu = deployments('gpu');
    const images = gpu.map((d) => worker(d).image.split(':')[0]);
    assert.equal(new Set(images).size, gpu.length, images.join(', '));
    assert.deepEqual(images.sort(), ['diffem-cpu', 'diffem-gpu-sample', 'diffem-gpu-train']);

    const dir = await copyOfK8s(true);
    const edit = await runGoTool(
      KUSTOMIZE,
      ['edit', 'set', 'image', 'diffem-gpu-train=registry.example/diffem-gpu-train:1.2.3'],
      path.join(dir, 'overlays', 'gpu'),
    );
    assert.equal(edit.code, 0, edit.stderr);
    const edited = (await render(dir, 'gpu')).filter((d): d is Deployment => d.kind === 'Deployment');
    const byName = new Map(edited.map((d) => [d.metadata.name, worker(d).image]));
    assert.equal(byName.get('diffem-worker-gpu-train'), 'registry.example/diffem-gpu-train:1.2.3');
    assert.equal(byName.get('diffem-worker-gpu-sample'), 'diffem-gpu-sample:0.1.0');
    assert.equal(byName.get('diffem-worker-cpu'), 'diffem-cpu:0.1.0');
  });

  test('credentials come from a generated or external Secret, never a committed one', async () => {
    // No Secret manifest in the tree at all.
    const files: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (/\.ya?ml$/.test(entry.name)) files.push(full);
      }
    };
    await walk(K8S);
    for (const file of files) {
      const docs = parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJS() as Partial<Doc> | null);
      assert.ok(!docs.some((d) => d?.kind === 'Secret'), `${path.relative(REPO, file)} commits a Secret`);
    }

    for (const overlay of OVERLAYS) {
      const secrets = docsOf(overlay, 'Secret');
      assert.equal(secrets.length, 1);
      const secret = secrets[0] as Doc & { data: Record<string, string> };
      // Generated: a content hash in the name, and the workers refer to that name.
      assert.match(secret.metadata.name, /^diffem-s3-[a-z0-9]{10}$/);
      const values = Object.values(secret.data).map((v) => Buffer.from(v, 'base64').toString());
      assert.deepEqual(values.sort(), ['deploy-test-key', 'deploy-test-secret']);
      for (const d of deployments(overlay)) {
        assert.ok(
          worker(d).envFrom?.some((e) => e.secretRef?.name === secret.metadata.name),
          d.metadata.name,
        );
      }
    }

    // Without the credentials file nothing renders, and the error names the file.
    const bare = await copyOfK8s(false);
    const result = await runGoTool(KUSTOMIZE, ['build', path.join(bare, 'overlays', 'gpu')]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /s3\.env/);
  });

  test('the external-secret component replaces the generated Secret with an ExternalSecret', async () => {
    const dir = await copyOfK8s(false);
    const overlay = path.join(dir, 'overlays', 'gpu');
    const text = await readFile(path.join(overlay, 'kustomization.yaml'), 'utf8');
    await writeFile(
      path.join(overlay, 'kustomization.yaml'),
      text.replace('components/s3-env-file', 'components/s3-external-secret'),
    );
    const docs = await render(dir, 'gpu');
    assert.deepEqual(await Promise.all(docs.map(manifestProblems)).then((p) => p.flat()), []);
    assert.equal(docs.filter((d) => d.kind === 'Secret').length, 0);
    const external = docs.filter((d) => d.kind === 'ExternalSecret') as Array<
      Doc & { spec: { target: { name: string } } }
    >;
    assert.equal(external.length, 1);
    assert.equal(external[0].spec.target.name, 'diffem-s3');
  });

  test('workers have liveness and readiness probes on the health port they serve', () => {
    for (const overlay of OVERLAYS) {
      for (const d of deployments(overlay)) {
        const c = worker(d);
        const healthPort = Number(flag(c.args, '--health-port'));
        assert.ok(healthPort > 0, `${d.metadata.name}: worker without --health-port`);
        const named = c.ports?.find((p) => p.containerPort === healthPort)?.name;
        const probes = { livenessProbe: '/healthz', readinessProbe: '/readyz' } as const;
        for (const [probe, endpoint] of Object.entries(probes) as Array<[keyof typeof probes, string]>) {
          const httpGet = c[probe]?.httpGet;
          assert.ok(httpGet, `${d.metadata.name}: no ${probe}`);
          assert.equal(httpGet.path, endpoint, `${d.metadata.name} ${probe}`);
          assert.ok(
            httpGet.port === healthPort || (named !== undefined && httpGet.port === named),
            `${d.metadata.name} ${probe} port`,
          );
        }
      }
    }
  });

  test('GPUs are requested by the GPU-stack workers only, and those insist on CUDA', () => {
    for (const d of deployments('gpu')) {
      const c = worker(d);
      const queue = flag(c.args, '--queue');
      const onGpu = queue === 'diffem-gpu-train' || queue === 'diffem-gpu-sample';
      assert.equal(gpuRequest(c) !== undefined, onGpu, `${d.metadata.name}: GPU request`);
      if (onGpu) {
        assert.equal(String(gpuRequest(c)), '1');
        assert.equal(flag(c.args, '--device'), 'cuda', d.metadata.name);
        assert.ok(c.image.startsWith(`${queue}:`), `${d.metadata.name} runs ${c.image} for ${queue}`);
      }
    }
    for (const d of deployments('cpu-only')) {
      assert.equal(gpuRequest(worker(d)), undefined, d.metadata.name);
      assert.notEqual(flag(worker(d).args, '--device'), 'cuda', d.metadata.name);
      assert.ok(worker(d).image.startsWith('diffem-cpu:'), d.metadata.name);
    }
    // Every queue is served in both overlays.
    for (const overlay of OVERLAYS) {
      const served = deployments(overlay).flatMap((d) => queuesPolled(flag(worker(d).args, '--queue')));
      assert.deepEqual([...new Set(served)].sort(), Object.values(TASK_QUEUES).sort(), overlay);
    }
  });

  test('termination grace exceeds the shutdown grace of every worker', () => {
    for (const overlay of OVERLAYS) {
      for (const d of deployments(overlay)) {
        const grace = seconds(flag(worker(d).args, '--shutdown-grace'));
        const termination = d.spec.template.spec.terminationGracePeriodSeconds ?? 30;
        assert.ok(
          termination > grace,
          `${d.metadata.name}: terminationGracePeriodSeconds ${termination} <= --shutdown-grace ${grace}s`,
        );
      }
    }
  });

  test('each worker deployment has a PodDisruptionBudget and a KEDA trigger on the queues it polls', () => {
    for (const overlay of OVERLAYS) {
      const budgets = docsOf(overlay, 'PodDisruptionBudget') as Array<
        Doc & { spec: { selector: { matchLabels: Record<string, string> } } }
      >;
      const scaled = docsOf(overlay, 'ScaledObject') as Array<
        Doc & {
          spec: {
            scaleTargetRef: { name: string };
            triggers: Array<{ type: string; metadata: Record<string, string> }>;
          };
        }
      >;
      for (const d of deployments(overlay)) {
        const labels = d.spec.template.metadata.labels;
        const covering = budgets.filter((b) =>
          Object.entries(b.spec.selector.matchLabels).every(([k, v]) => labels[k] === v),
        );
        assert.equal(covering.length, 1, `${d.metadata.name}: PodDisruptionBudgets selecting its pods`);

        const objects = scaled.filter((s) => s.spec.scaleTargetRef.name === d.metadata.name);
        assert.equal(objects.length, 1, `${d.metadata.name}: ScaledObjects`);
        const triggers = objects[0].spec.triggers;
        assert.ok(
          triggers.every((t) => t.type === 'temporal'),
          d.metadata.name,
        );
        assert.deepEqual(
          triggers.map((t) => t.metadata.taskQueue).sort(),
          queuesPolled(flag(worker(d).args, '--queue')).sort(),
          `${d.metadata.name}: trigger queues`,
        );
        // The scaler reads the address from the container's environment (the ConfigMap).
        assert.ok(triggers.every((t) => t.metadata.endpointFromEnv === 'TEMPORAL_ADDRESS'));
        assert.ok(worker(d).envFrom?.some((e) => e.configMapRef?.name === 'diffem-config'));
      }
    }
  });

  test('the bucket Job runs the CPU image with the workers settings, and its script exists', async () => {
    for (const overlay of OVERLAYS) {
      const jobs = docsOf(overlay, 'Job') as Array<Doc & { spec: { template: { spec: PodSpec } } }>;
      assert.equal(jobs.length, 1);
      const c = jobs[0].spec.template.spec.containers[0];
      assert.ok(c.image.startsWith('diffem-cpu:'));
      const script = (c.command ?? []).join(' ').match(/dist\/[\w/.-]+\.js/)?.[0];
      assert.ok(script, 'the Job runs no script of the image');
      await access(path.join(REPO, script));
      assert.ok(c.envFrom?.some((e) => e.configMapRef?.name === 'diffem-config'));
      assert.ok(c.envFrom?.some((e) => e.secretRef?.name.startsWith('diffem-s3')));
    }
  });

  test('the CPU worker mounts the data volume; every worker has a writable cache', () => {
    for (const overlay of OVERLAYS) {
      const claims = docsOf(overlay, 'PersistentVolumeClaim');
      assert.deepEqual(
        claims.map((c) => c.metadata.name),
        ['diffem-data'],
      );
      for (const d of deployments(overlay)) {
        const spec = d.spec.template.spec;
        const mounts = new Map((worker(d).volumeMounts ?? []).map((m) => [m.mountPath, m.name]));
        const volume = (mountPath: string) => spec.volumes?.find((v) => v.name === mounts.get(mountPath));
        assert.ok(volume('/cache')?.emptyDir, `${d.metadata.name}: /cache`);
        if (flag(worker(d).args, '--queue') === 'diffem-cpu') {
          assert.equal(volume('/data')?.persistentVolumeClaim?.claimName, 'diffem-data');
        }
      }
    }
  });
});
