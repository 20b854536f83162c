/**
 * The campaign definition: DiffEM (docs/method.md) as a sequence of named, memoisable steps.
 *
 *     prepare -> shard -> lap 0 (Gaussian EM, exact posterior samples, fresh model)
 *     lap k = 1..K:  E-step per shard (fan-out) -> evaluate -> M-step (warm start) -> record
 *     final: E-step with the last model -> unconditional prior -> prior samples -> figures
 *
 * This code is deterministic: no clock, no randomness, no I/O, no Node built-ins. Every
 * effect goes through `host.call(activity, stepId, input)`, whose inputs and outputs are
 * small JSON. Two engines run it unchanged: the embedded engine memoises each call by its
 * step id in the artifact store and replays this function after a crash; the Temporal
 * workflow turns each call into an activity (its activity id is the step id).
 */
import type { CampaignConfig } from './config.js';
import { lapName, shardName } from './keys.js';
import type {
  ActivityInput,
  ActivityName,
  ActivityOutput,
  ArtifactRef,
  CampaignSummary,
  GuidanceStats,
  LapRecord,
  Metrics,
  ParentModel,
  PreparedData,
  Shard,
  StepInput,
  TrainOutput,
} from './types.js';

export interface CampaignInput {
  store: string;
  campaignId: string;
  config: CampaignConfig;
  /** Where a continued run picks up (Temporal continue-as-new); absent at the start. */
  resume?: CampaignState;
  /** `config.init.from`'s final conditional model, resolved by the engine (engines/lineage.ts). */
  parent?: ParentModel;
}

/** Everything the laps after `nextLap` need: small, so it can cross continue-as-new. */
export interface CampaignState {
  data: PreparedData;
  shards: Shard[];
  nextLap: number;
  model: TrainOutput;
  firstSamples: ArtifactRef[];
  lastMetrics: Metrics;
}

export interface CampaignProgress {
  phase: 'data' | 'lap' | 'final' | 'done';
  lap: number;
  laps: number;
  step: string;
  metrics?: Metrics;
}

export interface CampaignHost {
  call<K extends ActivityName>(name: K, step: string, input: ActivityInput<K>): Promise<ActivityOutput<K>>;
  progress(event: CampaignProgress): void;
  /**
   * Called before each lap with the state so far: may wait (pause), end the loop early
   * ('stop': the campaign finishes with the laps it has), or continue the run elsewhere
   * (Temporal's continue-as-new throws out of here).
   */
  beforeLap(state: CampaignState): Promise<'continue' | 'stop'>;
}

/** Runs `task` over `items` with at most `limit` in flight; results keep the items' order. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** Guidance statistics of several shards as one (means weighted by evaluations). */
export function mergeGuidance(a: GuidanceStats | undefined, b: GuidanceStats): GuidanceStats {
  if (!a) return { ...b };
  const evaluations = a.evaluations + b.evaluations;
  return {
    solver: b.solver,
    iterations: Math.max(a.iterations, b.iterations),
    evaluations,
    breakdowns: a.breakdowns + b.breakdowns,
    residualMax: Math.max(a.residualMax, b.residualMax),
    residualMean: evaluations > 0 ? (a.residualMean * a.evaluations + b.residualMean * b.evaluations) / evaluations : 0,
  };
}

/** Collects what a lap did, for its record. */
class LapLedger {
  readonly steps: LapRecord['steps'] = [];
  readonly artifacts: ArtifactRef[] = [];
  evaluations = 0;
  trainingEvaluations = 0;
  guidance: GuidanceStats | undefined;

  constructor(
    private readonly host: CampaignHost,
    readonly lap: number,
  ) {}

  async call<K extends ActivityName>(name: K, step: string, input: ActivityInput<K>): Promise<ActivityOutput<K>> {
    const output = await this.host.call(name, step, input);
    const timed = output as Partial<{ seconds: number; attempt: number }>;
    this.steps.push({ step, activity: name, seconds: timed.seconds ?? 0, attempt: timed.attempt ?? 1 });
    collectRefs(output, this.artifacts);
    const evaluations = (output as Partial<{ evaluations: number }>).evaluations;
    if (typeof evaluations === 'number') this.evaluations += evaluations;
    const training = (output as Partial<{ trainingEvaluations: number }>).trainingEvaluations;
    if (typeof training === 'number') this.trainingEvaluations += training;
    const guidance = (output as Partial<{ guidance: GuidanceStats }>).guidance;
    if (guidance) this.guidance = mergeGuidance(this.guidance, guidance);
    return output;
  }

  /** Sorted by step id and key: concurrent steps finish in any order, a record must not. */
  record(metrics: Metrics, seeds: Record<string, string>): LapRecord {
    this.steps.sort((a, b) => compare(a.step, b.step));
    this.artifacts.sort((a, b) => compare(a.key, b.key));
    const attempts = this.steps.reduce((sum, s) => sum + s.attempt, 0);
    return {
      lap: this.lap,
      metrics,
      artifacts: this.artifacts,
      seconds: round3(this.steps.reduce((sum, s) => sum + s.seconds, 0)),
      seeds,
      steps: this.steps,
      attempts,
      failures: attempts - this.steps.length,
      evaluations: this.evaluations,
      trainingEvaluations: this.trainingEvaluations,
      ...(this.guidance ? { guidance: this.guidance } : {}),
    };
  }
}

/** Every artifact reference inside an activity's output, once each, in the order found. */
export function collectRefs(value: unknown, into: ArtifactRef[]): void {
  if (!value || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const v of value) collectRefs(v, into);
    return;
  }
  const o = value as Record<string, unknown>;
  if (typeof o.key === 'string' && typeof o.sha256 === 'string' && typeof o.bytes === 'number') {
    if (!into.some((r) => r.key === o.key)) into.push({ key: o.key, sha256: o.sha256, bytes: o.bytes });
    return;
  }
  for (const v of Object.values(o)) collectRefs(v, into);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The stream paths of a lap's draws, recorded so an auditor can re-derive any of them. */
function lapSeeds(config: CampaignConfig, lap: number): Record<string, string> {
  const s = config.seed;
  if (lap === 0) {
    return {
      gaussian: `${s}/gaussian/shard-*`,
      init: `${s}/init/lap-0`,
      train: `${s}/train/lap-0/step-*`,
      recorrupt: `${s}/recorrupt/lap-0`,
    };
  }
  return {
    estep: `${s}/estep/lap-${lap}/shard-*`,
    recorrupt: `${s}/recorrupt/lap-${lap}`,
    train: `${s}/train/lap-${lap}/step-*`,
    metrics: `${s}/metrics/lap-${lap}`,
  };
}

export async function runCampaign(host: CampaignHost, input: CampaignInput): Promise<CampaignSummary> {
  const { config } = input;
  const base: StepInput = { store: input.store, campaignId: input.campaignId, config };
  const laps = config.em.laps;
  if (config.init && !input.parent && !input.resume) {
    throw new Error(`config init.from '${config.init.from}' needs the parent's model resolved by the engine`);
  }
  let state = input.resume ?? (await initialLap(host, base, input.parent));

  while (state.nextLap <= laps) {
    if ((await host.beforeLap(state)) === 'stop') break;
    const lap = state.nextLap;
    const name = lapName(lap);
    const ledger = new LapLedger(host, lap);
    host.progress({ phase: 'lap', lap, laps, step: 'E-step' });
    const samples = await eStep(ledger, base, state, lap, `${name}/estep`);
    host.progress({ phase: 'lap', lap, laps, step: 'evaluate' });
    const evaluation = await ledger.call('evaluate', `${name}/evaluate`, {
      ...base,
      lap,
      shards: state.shards,
      samples,
      clean: state.data.clean,
      truth: state.data.truth,
    });
    host.progress({ phase: 'lap', lap, laps, step: 'M-step', metrics: evaluation.metrics });
    const model = await ledger.call('trainConditional', `${name}/train`, {
      ...base,
      lap,
      samples,
      init: state.model.weights,
    });
    const record = ledger.record({ ...evaluation.metrics, final_loss: last(model.losses) }, lapSeeds(config, lap));
    await host.call('recordLap', `${name}/record`, { ...base, record });
    host.progress({ phase: 'lap', lap, laps, step: 'recorded', metrics: record.metrics });
    state = { ...state, nextLap: lap + 1, model, lastMetrics: evaluation.metrics };
  }
  return finalStage(host, base, state);
}

async function initialLap(host: CampaignHost, base: StepInput, parent?: ParentModel): Promise<CampaignState> {
  const laps = base.config.em.laps;
  host.progress({ phase: 'data', lap: 0, laps, step: 'prepare data' });
  const data = await host.call('prepareData', 'data/prepare', base);
  const plan = await host.call('shardDataset', 'data/shard', { ...base, observations: data.observations });
  const ledger = new LapLedger(host, 0);
  const name = lapName(0);
  if (parent) return warmLap(host, base, ledger, data, plan.shards, parent);
  host.progress({ phase: 'lap', lap: 0, laps, step: 'Gaussian initialisation' });
  const init = await ledger.call('initializeGaussian', `${name}/gaussian`, { ...base, shards: plan.shards });
  const evaluation = await ledger.call('evaluate', `${name}/evaluate`, {
    ...base,
    lap: 0,
    shards: plan.shards,
    samples: init.samples,
    clean: data.clean,
    truth: data.truth,
  });
  host.progress({ phase: 'lap', lap: 0, laps, step: 'M-step', metrics: evaluation.metrics });
  const model = await ledger.call('trainConditional', `${name}/train`, {
    ...base,
    lap: 0,
    samples: init.samples,
    init: null,
  });
  const record = ledger.record({ ...evaluation.metrics, final_loss: last(model.losses) }, lapSeeds(base.config, 0));
  await host.call('recordLap', `${name}/record`, { ...base, record });
  host.progress({ phase: 'lap', lap: 0, laps, step: 'recorded', metrics: record.metrics });
  return { data, shards: plan.shards, nextLap: 1, model, firstSamples: init.samples, lastMetrics: evaluation.metrics };
}

/**
 * Lap 0 of a warm start: instead of the Gaussian, the parent's final conditional model
 * reconstructs this campaign's (grown) data, and the M-step continues from its weights.
 */
async function warmLap(
  host: CampaignHost,
  base: StepInput,
  ledger: LapLedger,
  data: PreparedData,
  shards: Shard[],
  parent: ParentModel,
): Promise<CampaignState> {
  const laps = base.config.em.laps;
  const name = lapName(0);
  host.progress({ phase: 'lap', lap: 0, laps, step: `E-step with ${parent.campaignId}'s model` });
  const samples = await eStep(ledger, base, { shards, model: parent }, 0, `${name}/estep`);
  const evaluation = await ledger.call('evaluate', `${name}/evaluate`, {
    ...base,
    lap: 0,
    shards,
    samples,
    clean: data.clean,
    truth: data.truth,
  });
  host.progress({ phase: 'lap', lap: 0, laps, step: 'M-step', metrics: evaluation.metrics });
  const model = await ledger.call('trainConditional', `${name}/train`, {
    ...base,
    lap: 0,
    samples,
    init: parent.weights,
  });
  const s = base.config.seed;
  const seeds = {
    estep: `${s}/estep/lap-0/shard-*`,
    recorrupt: `${s}/recorrupt/lap-0`,
    train: `${s}/train/lap-0/step-*`,
  };
  const record = ledger.record({ ...evaluation.metrics, final_loss: last(model.losses) }, seeds);
  await host.call('recordLap', `${name}/record`, { ...base, record });
  host.progress({ phase: 'lap', lap: 0, laps, step: 'recorded', metrics: record.metrics });
  return { data, shards, nextLap: 1, model, firstSamples: samples, lastMetrics: evaluation.metrics };
}

function eStep(
  ledger: LapLedger,
  base: StepInput,
  state: Pick<CampaignState, 'shards'> & { model: Pick<TrainOutput, 'onnx' | 'weights'> },
  lap: number,
  prefix: string,
  final?: true,
): Promise<ArtifactRef[]> {
  return mapConcurrent(state.shards, base.config.em.concurrency, async (shard) => {
    const out = await ledger.call('posteriorSample', `${prefix}/${shardName(shard.index)}`, {
      ...base,
      lap,
      ...(final && { final }),
      shard,
      model: state.model.onnx,
      // Only EM-MMPS reads the weights; DiffEM's E-step inputs (and so their step digests) stay as they were.
      ...(base.config.method === 'emmps' ? { weights: state.model.weights } : {}),
    });
    return out.samples;
  });
}

async function finalStage(host: CampaignHost, base: StepInput, state: CampaignState): Promise<CampaignSummary> {
  const laps = base.config.em.laps;
  const lapsDone = state.nextLap - 1;
  const ledger = new LapLedger(host, state.nextLap);
  host.progress({ phase: 'final', lap: lapsDone, laps, step: 'final reconstructions' });
  const samples = await eStep(ledger, base, state, state.nextLap, 'final/estep', true);
  host.progress({ phase: 'final', lap: lapsDone, laps, step: 'final evaluation' });
  const evaluation = await ledger.call('evaluate', 'final/evaluate', {
    ...base,
    lap: state.nextLap,
    final: true,
    shards: state.shards,
    samples,
    clean: state.data.clean,
    truth: state.data.truth,
  });
  host.progress({ phase: 'final', lap: lapsDone, laps, step: 'prior training', metrics: evaluation.metrics });
  const prior = await ledger.call('trainPrior', 'final/prior', { ...base, lap: state.nextLap, samples, init: null });
  host.progress({ phase: 'final', lap: lapsDone, laps, step: 'prior sampling' });
  const priorSamples = await ledger.call('samplePrior', 'final/prior-samples', {
    ...base,
    model: prior.onnx,
    clean: state.data.clean,
    truth: state.data.truth,
  });
  const figures = await ledger.call('renderFigures', 'final/figures', {
    ...base,
    laps: [
      { lap: 0, samples: state.firstSamples },
      { lap: state.nextLap, final: true, samples },
    ],
    prior: priorSamples.samples,
    truth: state.data.truth,
  });
  const summary: CampaignSummary = {
    campaignId: base.campaignId,
    laps: lapsDone,
    datasetDigest: state.data.datasetDigest,
    finalModel: state.model.weights,
    prior: prior.weights,
    priorSamples: priorSamples.samples,
    priorMetrics: priorSamples.metrics,
    figures: figures.figures,
    lastMetrics: evaluation.metrics,
    ...(base.config.init && { parent: base.config.init.from }),
    ...(state.data.snapshot && { snapshot: state.data.snapshot }),
  };
  await host.call('finishCampaign', 'final/summary', { ...base, summary });
  host.progress({ phase: 'done', lap: lapsDone, laps, step: 'done', metrics: evaluation.metrics });
  return summary;
}

function last(values: number[]): number {
  return values.length ? values[values.length - 1] : Number.NaN;
}
