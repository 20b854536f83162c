/**
 * Chooses and initialises the tfjs backend every model runs on.
 *
 * Preference under 'auto': TensorFlow's native library with CUDA (`@tensorflow/tfjs-node-gpu`),
 * then native on CPU (`@tensorflow/tfjs-node`), then WebAssembly with our own kernels. The
 * native packages are optional and probed with a dynamic import, so nothing here requires
 * them to be installed.
 */
import { register } from 'node:module';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import { DeviceUnavailableError } from './device.js';
import { loadOpenBlas } from './kernels/blas.js';
import { setFusedLayers } from './kernels/layer-norm-silu.js';
import { installBlasGemm, registerWasmKernels, removeBlasGemm } from './kernels/index.js';

export { blasGemmInstalled } from './kernels/index.js';

export type BackendChoice = 'auto' | 'wasm' | 'cpu' | 'tensorflow';
export type DeviceChoice = 'auto' | 'cpu' | 'cuda';
/**
 * The wasm backend's matrix products: 'wasm' (XNNPACK, the same bits on every machine),
 * 'openblas' (the machine's OpenBLAS through koffi: ~4x the flops, bits may differ between
 * CPU models; an error where it is missing) or 'auto' (OpenBLAS where it loads).
 */
export type GemmChoice = 'wasm' | 'openblas' | 'auto';

/**
 * 'portable': the wasm backend's own ops and XNNPACK, the same bits on every machine.
 * 'fast': fused layer kernels and, where it loads, OpenBLAS for the matrix products; the
 * bits then depend on the CPU model and on whether OpenBLAS is installed.
 */
export type KernelChoice = 'portable' | 'fast';

export interface BackendOptions {
  backend?: BackendChoice;
  device?: DeviceChoice;
  /** Sets `gemm` ('fast': 'auto', 'portable': 'wasm') and the fused layer kernels. */
  kernels?: KernelChoice;
  gemm?: GemmChoice;
}

export interface BackendInfo {
  /** The tfjs backend name now active: 'tensorflow', 'wasm' or 'cpu'. */
  backend: string;
  device: 'cpu' | 'cuda';
}

/** Who multiplies matrices on the wasm backend (`blasGemmInstalled` tells which is in). */
type GemmInUse = 'xnnpack' | 'openblas';

const NODE_GPU = '@tensorflow/tfjs-node-gpu';
const NODE_CPU = '@tensorflow/tfjs-node';

const CUDA_HINT =
  `device 'cuda' needs TensorFlow's CUDA build: run \`npm i ${NODE_GPU}\` on a CUDA-enabled ` +
  'machine (NVIDIA GPU with a matching driver, CUDA toolkit and cuDNN), or use device ' +
  "'cpu' / 'auto'";

type Probe = { ok: true } | { ok: false; missing: boolean; error: unknown };

const probes = new Map<string, Promise<Probe>>();

/** Imports an optional package once; `missing` tells "not installed" from "fails to load". */
function probe(pkg: string): Promise<Probe> {
  let pending = probes.get(pkg);
  if (pending === undefined) {
    pending = loadOptional(pkg);
    probes.set(pkg, pending);
  }
  return pending;
}

async function loadOptional(pkg: string): Promise<Probe> {
  // A string-typed specifier keeps the compiler from resolving a package that is absent.
  const specifier: string = pkg;
  // TensorFlow's C library logs CPU-feature notices at start-up unless told otherwise.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  try {
    await import(specifier);
    return { ok: true };
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
    const message = error instanceof Error ? error.message : String(error);
    const missing = (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${pkg}'`);
    return { ok: false, missing, error };
  }
}

function loadFailure(pkg: string, result: Probe): Error {
  if (result.ok) return new Error(`${pkg} loaded`);
  const reason = result.error instanceof Error ? result.error.message : String(result.error);
  return new Error(`${pkg} is installed but failed to load: ${reason}`, { cause: result.error });
}

/**
 * tfjs-core's Node bundle carries no gradient definitions; they exist only as its per-file
 * ES modules, whose relative imports omit the `.js` extension that Node's ESM resolver
 * requires. This resolve hook supplies it (or
 * `/index.js` for a directory), for importers inside tfjs-core's dist/ only.
 *
 * The modules form a second copy of tfjs-core's sources, which is sound because tfjs keeps
 * its engine, kernel/gradient registries and Tensor class in process-wide globals and the
 * Node bundle, imported statically above, creates them first.
 */
const CORE_ESM_RESOLVE_HOOK = `
import { existsSync } from 'node:fs';
const ROOT = '/@tensorflow/tfjs-core/dist/';
export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  if (parent && parent.includes(ROOT) && specifier.startsWith('.') && !specifier.endsWith('.js')) {
    const file = new URL(specifier + '.js', parent);
    const url = existsSync(file) ? file : new URL(specifier + '/index.js', parent);
    return { url: url.href, format: 'module', shortCircuit: true };
  }
  return next(specifier, context);
}`;

let coreExtras: Promise<void> | null = null;

/**
 * Registers tfjs-core's gradients, which `tf.grad`, `tf.variableGrads` and optimizers need.
 * Once per process; ~0.5 s the first time.
 */
export function registerGradients(): Promise<void> {
  if (coreExtras === null) {
    coreExtras = (async () => {
      register(`data:text/javascript,${encodeURIComponent(CORE_ESM_RESOLVE_HOOK)}`);
      const gradients: string = '@tensorflow/tfjs-core/dist/register_all_gradients.js';
      await import(gradients);
    })();
    coreExtras.catch(() => {
      coreExtras = null;
    });
  }
  return coreExtras;
}

/**
 * The tfjs CPU backend prints a "install the node backend" banner on its first tensor.
 * That advice is ours to give (see `initBackend`), so mute it on the live instance; tfjs's
 * global PROD/IS_TEST switches would also silence every other warning.
 */
export function quietCpuBackend(): void {
  if (tf.getBackend() !== 'cpu') return;
  const cpu: unknown = tf.findBackend('cpu');
  if (typeof cpu === 'object' && cpu !== null && 'firstUse' in cpu) {
    (cpu as { firstUse: boolean }).firstUse = false;
  }
}

async function switchTo(name: string): Promise<void> {
  if (name === 'wasm') registerWasmKernels();
  if (tf.getBackend() !== name) {
    const ok = await tf.setBackend(name);
    if (!ok) throw new Error(`tfjs backend '${name}' failed to initialise`);
  }
  await tf.ready();
  if (name === 'cpu') quietCpuBackend();
}

/** Switches run one at a time: tfjs marks a backend current before it finishes initialising. */
let switching: Promise<void> = Promise.resolve();

function activate(name: string): Promise<void> {
  const next = switching.then(() => switchTo(name));
  switching = next.catch(() => undefined);
  return next;
}

/** Installs or removes the OpenBLAS GEMM on the wasm backend, per `choice`. */
async function chooseGemm(choice: GemmChoice): Promise<GemmInUse> {
  if (choice === 'wasm') {
    removeBlasGemm();
    return 'xnnpack';
  }
  const blas = await loadOpenBlas();
  if (!blas.ok) {
    if (choice === 'openblas') throw new DeviceUnavailableError(`runtime.gemm 'openblas': ${blas.reason}`);
    removeBlasGemm();
    return 'xnnpack';
  }
  installBlasGemm(blas);
  return 'openblas';
}

async function resolve(backend: BackendChoice, device: DeviceChoice): Promise<BackendInfo> {
  if (device === 'cuda') {
    if (backend === 'wasm' || backend === 'cpu') {
      throw new DeviceUnavailableError(`backend '${backend}' runs on the CPU only; ${CUDA_HINT}`);
    }
    const gpu = await probe(NODE_GPU);
    if (!gpu.ok) throw gpu.missing ? new DeviceUnavailableError(CUDA_HINT) : loadFailure(NODE_GPU, gpu);
    return { backend: 'tensorflow', device: 'cuda' };
  }
  if (backend === 'wasm' || backend === 'cpu') return { backend, device: 'cpu' };

  // 'auto' or 'tensorflow' on device 'auto' or 'cpu'.
  if (device === 'auto') {
    const gpu = await probe(NODE_GPU);
    if (gpu.ok) return { backend: 'tensorflow', device: 'cuda' };
    if (!gpu.missing) process.emitWarning(loadFailure(NODE_GPU, gpu).message);
  }
  const native = await probe(NODE_CPU);
  if (native.ok) return { backend: 'tensorflow', device: 'cpu' };
  if (backend === 'tensorflow') {
    throw native.missing
      ? new Error(`backend 'tensorflow' needs TensorFlow's native build: run \`npm i ${NODE_CPU}\``)
      : loadFailure(NODE_CPU, native);
  }
  if (!native.missing) process.emitWarning(loadFailure(NODE_CPU, native).message);
  return { backend: 'wasm', device: 'cpu' };
}

const resolved = new Map<string, Promise<BackendInfo>>();

/**
 * Selects, initialises and activates a backend. Idempotent and cheap on repeat: the choice
 * is resolved once per option set, and re-activating an initialised backend costs nothing.
 * Throws when `device: 'cuda'` is asked for without `@tensorflow/tfjs-node-gpu`.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  const backend = options.backend ?? 'auto';
  const device = options.device ?? 'auto';
  const key = `${backend}/${device}`;
  let pending = resolved.get(key);
  if (pending === undefined) {
    pending = resolve(backend, device);
    resolved.set(key, pending);
    pending.catch(() => resolved.delete(key));
  }
  const info = await pending;
  await registerGradients();
  await activate(info.backend);
  // No choice keeps the current one (XNNPACK until someone asks for OpenBLAS).
  if (info.backend === 'wasm') {
    if (options.kernels) setFusedLayers(options.kernels === 'fast');
    const choice = options.gemm ?? (options.kernels ? (options.kernels === 'fast' ? 'auto' : 'wasm') : undefined);
    if (choice) await chooseGemm(choice);
  }
  return { ...info };
}
