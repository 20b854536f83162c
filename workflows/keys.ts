/**
 * The store layout of a campaign, as pure functions: every key a campaign reads or writes is
 * built here and nowhere else, so the layout can be read (and changed) in one place.
 *
 *     campaigns/{id}/campaign.json | status.json | progress.json | control.json | summary.json
 *     campaigns/{id}/steps/{step}.json                   the embedded engine's journal
 *     campaigns/{id}/laps/lap-00k.json                   one audit record per lap
 *     campaigns/{id}/data/...                            observations, shards, evaluation-only truth
 *     campaigns/{id}/{stage}/gaussian|estep|train|prior  a stage's artifacts (stage: lap-00k or final)
 *     campaigns/{id}/figures/*.png                       figures people look at
 *
 * Pure: the workflow sandbox imports it (step ids share the `lap-00k` names).
 */

/** A lap's number, or the final stage that follows the last lap done. */
export type Stage = number | 'final';

export function lapName(lap: number): string {
  return `lap-${String(lap).padStart(3, '0')}`;
}

/** The directory of a stage's artifacts: `lap-00k`, or `final`. */
export function stageName(stage: Stage): string {
  return stage === 'final' ? 'final' : lapName(stage);
}

export function shardName(index: number): string {
  return `shard-${String(index).padStart(3, '0')}`;
}

function key(campaignId: string, ...parts: string[]): string {
  return ['campaigns', campaignId, ...parts].join('/');
}

/** What a retraining schedule did at each tick (`engines/lineage.ts`). */
export function scheduleRunsKey(schedule: string): string {
  return `schedules/${schedule}/runs.json`;
}

export const campaignKeys = {
  manifest: (id: string) => key(id, 'campaign.json'),
  status: (id: string) => key(id, 'status.json'),
  progress: (id: string) => key(id, 'progress.json'),
  /** Pause and stop requests for a campaign on the embedded engine. */
  control: (id: string) => key(id, 'control.json'),
  summary: (id: string) => key(id, 'summary.json'),

  /** The embedded engine's journal record of one step. */
  step: (id: string, step: string) => key(id, 'steps', `${step}.json`),
  stepsPrefix: (id: string) => key(id, 'steps') + '/',
  lapRecord: (id: string, lap: number) => key(id, 'laps', `${lapName(lap)}.json`),
  lapRecordsPrefix: (id: string) => key(id, 'laps') + '/',

  observations: (id: string) => key(id, 'data', 'observations.safetensors'),
  clean: (id: string) => key(id, 'data', 'clean.safetensors'),
  /** The files of a growing `data.source` that the campaign read (names and sha256). */
  snapshot: (id: string) => key(id, 'data', 'snapshot.json'),
  dataShard: (id: string, index: number) => key(id, 'data', 'shards', `${shardName(index)}.safetensors`),
  /** Evaluation-only truth: the curve (vectors) or the FID reference and preview (images). */
  truth: (id: string, file: 'curve.json' | 'truth.json') => key(id, 'data', file),
  preview: (id: string) => key(id, 'data', 'preview.safetensors'),
  fidClassifier: (id: string, format: 'safetensors' | 'onnx') => key(id, 'data', `fid-classifier.${format}`),
  fidReference: (id: string) => key(id, 'data', 'fid-reference.safetensors'),

  gaussian: (id: string) => key(id, lapName(0), 'gaussian', 'prior.safetensors'),
  posteriorShard: (id: string, stage: Stage, index: number) =>
    key(id, stageName(stage), 'estep', `${shardName(index)}.safetensors`),
  /** A trained network's files: the M-step's of a lap, or the final prior's. */
  network: (
    id: string,
    role: { lap: number } | 'prior',
    file: 'checkpoint.safetensors' | 'weights.safetensors' | 'denoiser.onnx',
  ) => (role === 'prior' ? key(id, 'final', 'prior', file) : key(id, lapName(role.lap), 'train', file)),
  priorSamples: (id: string) => key(id, 'final', 'prior', 'samples.safetensors'),

  figure: (id: string, name: string) => key(id, 'figures', `${name}.png`),
  figuresPrefix: (id: string) => key(id, 'figures') + '/',
  report: (id: string) => key(id, 'report.html'),
  comparison: (id: string) => key(id, 'comparison.json'),
};
