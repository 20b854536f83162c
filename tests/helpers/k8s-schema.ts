/**
 * Validates Kubernetes manifests against the API's OpenAPI schemas, as packaged by
 * kubernetes-models (core and apps APIs) and @kubernetes-models/keda / external-secrets (CRDs):
 * each model's precompiled ajv validator checks types, enums, required fields and formats.
 *
 * Those validators let unknown fields through (the OpenAPI schemas do not close objects), while
 * `kubectl apply` rejects them (server-side field validation is Strict): a misspelt
 * `livenesProbe` would pass the schema and fail the cluster. So the document is validated
 * through a Proxy that records which properties the validator read; a key of an object the
 * validator walked field by field but never read is a field the schema does not have. Objects
 * the validator enumerated (maps: labels, resources, ConfigMap data) accept any key.
 */
import type { Model } from '@kubernetes-models/base';

type ModelClass = { prototype: Model<unknown> };

/** apiVersion -> the module with its model classes (named by kind). */
const MODEL_MODULES: Record<string, string> = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'batch/v1': 'kubernetes-models/batch/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'keda.sh/v1alpha1': '@kubernetes-models/keda/keda.sh/v1alpha1',
  'external-secrets.io/v1': '@kubernetes-models/external-secrets/external-secrets.io/v1',
};

interface Access {
  read: Set<string>;
  enumerated: boolean;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Wraps `value` so that reads and enumerations of every nested object are recorded. */
function track(value: unknown, accesses: WeakMap<object, Access>): unknown {
  if (!isObject(value)) return value;
  const access: Access = accesses.get(value) ?? { read: new Set(), enumerated: false };
  accesses.set(value, access);
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === 'string') access.read.add(key);
      return track(Reflect.get(target, key, receiver), accesses);
    },
    has(target, key) {
      if (typeof key === 'string') access.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      access.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(value: unknown, accesses: WeakMap<object, Access>, path: string, out: string[]): void {
  if (!isObject(value)) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => unknownFields(item, accesses, `${path}/${i}`, out));
    return;
  }
  const access = accesses.get(value);
  for (const key of Object.keys(value)) {
    if (access && !access.enumerated && !access.read.has(key)) out.push(`${path}/${key}`);
    else unknownFields(value[key], accesses, `${path}/${key}`, out);
  }
}

/**
 * The problems of one manifest: schema violations and fields the schema does not define, as
 * "Kind/name: message" lines. Empty when the manifest is valid. An apiVersion/kind without a
 * packaged schema is itself a problem, so nothing goes unchecked silently.
 */
export async function manifestProblems(doc: unknown): Promise<string[]> {
  if (!isObject(doc) || typeof doc.apiVersion !== 'string' || typeof doc.kind !== 'string') {
    return ['a document without apiVersion and kind'];
  }
  const metadata = isObject(doc.metadata) ? doc.metadata : {};
  const label = `${doc.kind}/${String(metadata.name ?? '?')}`;
  const modulePath = MODEL_MODULES[doc.apiVersion];
  if (modulePath === undefined) return [`${label}: no schema packaged for apiVersion ${doc.apiVersion}`];
  const models = (await import(modulePath)) as Record<string, ModelClass | undefined>;
  const model = models[doc.kind];
  if (model === undefined || typeof model.prototype?.validate !== 'function') {
    return [`${label}: no schema for kind ${doc.kind} in ${doc.apiVersion}`];
  }
  const accesses = new WeakMap<object, Access>();
  const problems: string[] = [];
  try {
    // The model's validate() runs its schema's validator on `this`.
    model.prototype.validate.call(track(doc, accesses) as Model<unknown>);
  } catch (error) {
    problems.push(`${label}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const unknown: string[] = [];
  unknownFields(doc, accesses, '', unknown);
  for (const path of unknown) problems.push(`${label}: unknown field ${path}`);
  return problems;
}
