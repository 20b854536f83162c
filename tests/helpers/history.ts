/**
 * Workflow histories in the JSON shape of `temporal workflow show -o json`, built by test
 * code, for replay tests without a server (Worker.runReplayHistory).
 *
 * A history is described as a list of workflow tasks ("turns"): the commands the workflow
 * issues in that task, in order, and what happens before the next task (the activities it
 * scheduled complete; signals arrive). Every WorkflowTaskCompleted event carries
 * `sdkMetadata.coreUsedFlags: [1]`: without that flag the replayer does not compare activity
 * types and ids, and a renamed activity would replay unnoticed.
 */

export interface ActivityCommand {
  kind: 'activity';
  type: string;
  id: string;
  taskQueue: string;
  /** What the activity returned (arguments are never compared on replay; results are delivered). */
  result: unknown;
  /** The activity failed instead (its last attempt), with an ApplicationFailure of this type. */
  failure?: { message: string; type: string; nonRetryable: boolean };
}

export type Command =
  | ActivityCommand
  | { kind: 'memo'; fields: Record<string, unknown> }
  | { kind: 'searchAttributes'; fields: Record<string, unknown> }
  | { kind: 'complete'; result: unknown }
  | { kind: 'fail'; message: string }
  | { kind: 'continueAsNew'; workflowType: string; taskQueue: string; input: unknown[] };

export interface Turn {
  commands: Command[];
  /** Signals that arrive after this turn's activities completed, before the next workflow task. */
  signalsAfter?: Array<{ name: string; args?: unknown[] }>;
}

export interface HistoryOptions {
  workflowType: string;
  taskQueue: string;
  input: unknown[];
  /** Run id of the run this one continues (continue-as-new). */
  continuedFrom?: string;
  startTime?: Date;
}

export interface HistoryJson {
  events: Array<Record<string, unknown>>;
}

const JSON_PLAIN = Buffer.from('json/plain').toString('base64');

export function payload(value: unknown): { metadata: { encoding: string }; data: string } {
  return { metadata: { encoding: JSON_PLAIN }, data: Buffer.from(JSON.stringify(value) ?? 'null').toString('base64') };
}

export function payloads(values: unknown[]): { payloads: ReturnType<typeof payload>[] } {
  return { payloads: values.map(payload) };
}

function taskQueue(name: string) {
  return { name, kind: 'TASK_QUEUE_KIND_NORMAL' };
}

export function buildHistory(options: HistoryOptions, turns: Turn[]): HistoryJson {
  const events: Array<Record<string, unknown>> = [];
  const start = options.startTime?.getTime() ?? Date.UTC(2025, 0, 1);
  const runId = '00000000-0000-4000-8000-000000000001';
  const add = (eventType: string, attributesName: string, attributes: Record<string, unknown>): number => {
    const eventId = events.length + 1;
    events.push({
      eventId: String(eventId),
      eventTime: new Date(start + eventId * 1000).toISOString(),
      eventType: `EVENT_TYPE_${eventType}`,
      taskId: String(1048576 + eventId),
      [attributesName]: attributes,
    });
    return eventId;
  };

  add('WORKFLOW_EXECUTION_STARTED', 'workflowExecutionStartedEventAttributes', {
    workflowType: { name: options.workflowType },
    taskQueue: taskQueue(options.taskQueue),
    input: payloads(options.input),
    workflowExecutionTimeout: '0s',
    workflowRunTimeout: '0s',
    workflowTaskTimeout: '10s',
    originalExecutionRunId: runId,
    firstExecutionRunId: options.continuedFrom ?? runId,
    ...(options.continuedFrom && {
      continuedExecutionRunId: options.continuedFrom,
      initiator: 'CONTINUE_AS_NEW_INITIATOR_WORKFLOW',
    }),
    identity: 'history-builder',
    attempt: 1,
    firstWorkflowTaskBackoff: '0s',
    header: {},
  });

  const workflowTask = (): number => {
    const scheduled = add('WORKFLOW_TASK_SCHEDULED', 'workflowTaskScheduledEventAttributes', {
      taskQueue: taskQueue(options.taskQueue),
      startToCloseTimeout: '10s',
      attempt: 1,
    });
    const started = add('WORKFLOW_TASK_STARTED', 'workflowTaskStartedEventAttributes', {
      scheduledEventId: String(scheduled),
      identity: 'history-builder',
      requestId: `wft-${scheduled}`,
      historySizeBytes: String(events.length * 512),
    });
    return add('WORKFLOW_TASK_COMPLETED', 'workflowTaskCompletedEventAttributes', {
      scheduledEventId: String(scheduled),
      startedEventId: String(started),
      identity: 'history-builder',
      sdkMetadata: { coreUsedFlags: [1] },
      meteringMetadata: {},
    });
  };

  for (const turn of turns) {
    const completed = workflowTask();
    const scheduled: Array<{ eventId: number; command: ActivityCommand }> = [];
    for (const command of turn.commands) {
      switch (command.kind) {
        case 'activity':
          scheduled.push({
            command,
            eventId: add('ACTIVITY_TASK_SCHEDULED', 'activityTaskScheduledEventAttributes', {
              activityId: command.id,
              activityType: { name: command.type },
              taskQueue: taskQueue(command.taskQueue),
              header: {},
              input: payloads([{}]),
              scheduleToCloseTimeout: '0s',
              scheduleToStartTimeout: '0s',
              startToCloseTimeout: '3600s',
              heartbeatTimeout: '0s',
              workflowTaskCompletedEventId: String(completed),
              retryPolicy: {
                initialInterval: '10s',
                backoffCoefficient: 2,
                maximumInterval: '600s',
                maximumAttempts: 3,
              },
            }),
          });
          break;
        case 'memo':
          add('WORKFLOW_PROPERTIES_MODIFIED', 'workflowPropertiesModifiedEventAttributes', {
            workflowTaskCompletedEventId: String(completed),
            upsertedMemo: {
              fields: Object.fromEntries(Object.entries(command.fields).map(([k, v]) => [k, payload(v)])),
            },
          });
          break;
        case 'searchAttributes':
          add('UPSERT_WORKFLOW_SEARCH_ATTRIBUTES', 'upsertWorkflowSearchAttributesEventAttributes', {
            workflowTaskCompletedEventId: String(completed),
            searchAttributes: {
              indexedFields: Object.fromEntries(Object.entries(command.fields).map(([k, v]) => [k, payload(v)])),
            },
          });
          break;
        case 'complete':
          add('WORKFLOW_EXECUTION_COMPLETED', 'workflowExecutionCompletedEventAttributes', {
            result: payloads([command.result]),
            workflowTaskCompletedEventId: String(completed),
          });
          break;
        case 'fail':
          add('WORKFLOW_EXECUTION_FAILED', 'workflowExecutionFailedEventAttributes', {
            failure: { message: command.message, source: 'TypeScriptSDK', applicationFailureInfo: { type: 'Error' } },
            retryState: 'RETRY_STATE_RETRY_POLICY_NOT_SET',
            workflowTaskCompletedEventId: String(completed),
          });
          break;
        case 'continueAsNew':
          add('WORKFLOW_EXECUTION_CONTINUED_AS_NEW', 'workflowExecutionContinuedAsNewEventAttributes', {
            newExecutionRunId: '00000000-0000-4000-8000-000000000002',
            workflowType: { name: command.workflowType },
            taskQueue: taskQueue(command.taskQueue),
            input: payloads(command.input),
            workflowRunTimeout: '0s',
            workflowTaskTimeout: '10s',
            workflowTaskCompletedEventId: String(completed),
            initiator: 'CONTINUE_AS_NEW_INITIATOR_WORKFLOW',
            header: {},
          });
          break;
      }
    }
    for (const { eventId, command } of scheduled) {
      const started = add('ACTIVITY_TASK_STARTED', 'activityTaskStartedEventAttributes', {
        scheduledEventId: String(eventId),
        identity: 'history-builder',
        requestId: `act-${eventId}`,
        attempt: 1,
      });
      if (command.failure) {
        add('ACTIVITY_TASK_FAILED', 'activityTaskFailedEventAttributes', {
          failure: {
            message: command.failure.message,
            source: 'TypeScriptSDK',
            applicationFailureInfo: { type: command.failure.type, nonRetryable: command.failure.nonRetryable },
          },
          scheduledEventId: String(eventId),
          startedEventId: String(started),
          identity: 'history-builder',
          retryState: command.failure.nonRetryable
            ? 'RETRY_STATE_NON_RETRYABLE_FAILURE'
            : 'RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED',
        });
        continue;
      }
      add('ACTIVITY_TASK_COMPLETED', 'activityTaskCompletedEventAttributes', {
        result: payloads([command.result]),
        scheduledEventId: String(eventId),
        startedEventId: String(started),
        identity: 'history-builder',
      });
    }
    for (const signal of turn.signalsAfter ?? []) {
      add('WORKFLOW_EXECUTION_SIGNALED', 'workflowExecutionSignaledEventAttributes', {
        signalName: signal.name,
        input: payloads(signal.args ?? []),
        identity: 'history-builder',
        header: {},
      });
    }
  }
  return { events };
}

// ---------------------------------------------------------------------------------------------
// The DiffEM campaign workflow, step by step, as a recorded history of it would show it. Written
// out independently of workflows/campaign.ts, as a recording is: when the definition changes
// the order or the names of its steps, the replay of this history must fail.

const SHA = 'ab'.repeat(32);

export function fakeRef(key: string): { key: string; sha256: string; bytes: number } {
  return { key, sha256: SHA, bytes: 128 };
}

const timed = { seconds: 0.5, attempt: 1 };
const METRICS = {
  sinkhorn: 0.01,
  curve_distance_mean: 0.05,
  curve_distance_median: 0.04,
  curve_distance_p90: 0.1,
  coverage: 0.9,
  consistency: 1.2,
};

/** Plausible outputs of each activity: enough structure for the campaign code to go on. */
export function fakeResult(type: string, id: string, shards: number): unknown {
  switch (type) {
    case 'prepareData':
      return {
        observations: fakeRef('data/observations'),
        clean: fakeRef('data/clean'),
        truth: fakeRef('data/curve'),
        datasetDigest: SHA,
        count: shards * 512,
        ...timed,
      };
    case 'shardDataset':
      return {
        shards: Array.from({ length: shards }, (_, index) => ({
          index,
          start: index * 512,
          end: (index + 1) * 512,
          observations: fakeRef(`data/shard-${index}`),
        })),
        ...timed,
      };
    case 'initializeGaussian':
      return {
        gaussian: fakeRef('lap-000/gaussian'),
        samples: Array.from({ length: shards }, (_, i) => fakeRef(`lap-000/estep/shard-${i}`)),
        logLikelihood: [-3, -2],
        ...timed,
      };
    case 'evaluate':
      return { metrics: METRICS, ...timed };
    case 'trainConditional':
    case 'trainPrior':
      return {
        weights: fakeRef(`${id}/weights`),
        onnx: fakeRef(`${id}/onnx`),
        losses: [1, 0.5],
        steps: 60,
        resumedFromStep: 0,
        ...timed,
      };
    case 'posteriorSample':
      return { samples: fakeRef(id), evaluations: 512 * 17, ...timed };
    case 'samplePrior':
      return { samples: fakeRef(id), metrics: METRICS, ...timed };
    case 'renderFigures':
      return { figures: [fakeRef('figures/reconstructions.png')], ...timed };
    case 'recordLap':
    case 'finishCampaign':
      return fakeRef(id);
    case 'openScheduledCampaign':
      return { created: true };
    default:
      return null;
  }
}

export interface CampaignScript {
  workflowType: string;
  laps: number;
  shards: number;
  cpu: string;
  gpu: string;
  /** The workflow's input (its first argument), as a client would have sent it. */
  input: Record<string, unknown>;
  /** Scheduled run: the workflow opens its campaign first. */
  scheduled?: boolean;
  /** Search attributes are upserted next to every memo. */
  searchAttributes?: boolean;
  /** A `pause` signal arrives after this lap is recorded; `resume` after the workflow held. */
  pauseAfterLap?: number;
  /** A `stop` signal arrives after this lap is recorded. */
  stopAfterLap?: number;
  /** This run continues-as-new before lap `continueBeforeLap`. */
  continueBeforeLap?: number;
  /** This run starts at this lap (a continued run, whose input carries `resume`). */
  resumeAtLap?: number;
}

const GPU_TYPES = new Set(['posteriorSample', 'trainConditional', 'trainPrior', 'samplePrior']);

export function lapLabel(lap: number): string {
  return `lap-${String(lap).padStart(3, '0')}`;
}

export function campaignTurns(script: CampaignScript): Turn[] {
  const turns: Turn[] = [];
  let prefix: Command[] = [];
  const act = (type: string, id: string): ActivityCommand => ({
    kind: 'activity',
    type,
    id,
    taskQueue: GPU_TYPES.has(type) ? script.gpu : script.cpu,
    result: fakeResult(type, id, script.shards),
  });
  const turn = (...commands: ActivityCommand[]): void => {
    turns.push({ commands: [...prefix, ...commands] });
    prefix = [];
  };
  const published = (status = 'running'): Command[] => [
    { kind: 'memo', fields: { status } },
    ...(script.searchAttributes ? [{ kind: 'searchAttributes' as const, fields: { DiffemLap: 1 } }] : []),
  ];
  const shardSteps = (prefixId: string) =>
    Array.from({ length: script.shards }, (_, i) =>
      act('posteriorSample', `${prefixId}/shard-${String(i).padStart(3, '0')}`),
    );

  if (script.resumeAtLap === undefined) {
    if (script.scheduled) turn(act('openScheduledCampaign', 'campaign/open'));
    turn(act('setCampaignStatus', 'campaign/running'));
    turn(act('prepareData', 'data/prepare'));
    turn(act('shardDataset', 'data/shard'));
    turn(act('initializeGaussian', 'lap-000/gaussian'));
    turn(act('evaluate', 'lap-000/evaluate'));
    turn(act('trainConditional', 'lap-000/train'));
    turn(act('recordLap', 'lap-000/record'));
  }
  for (let lap = script.resumeAtLap ?? 1; lap <= script.laps; lap++) {
    const name = lapLabel(lap);
    prefix = published();
    if (script.pauseAfterLap === lap - 1) {
      turns[turns.length - 1].signalsAfter = [{ name: 'pause' }];
      turns.push({ commands: prefix, signalsAfter: [{ name: 'resume' }] });
      prefix = published();
    }
    if (script.stopAfterLap === lap - 1) {
      turns[turns.length - 1].signalsAfter = [{ name: 'stop' }];
      break;
    }
    if (script.continueBeforeLap === lap) {
      turns.push({
        commands: [
          ...prefix,
          { kind: 'continueAsNew', workflowType: script.workflowType, taskQueue: script.cpu, input: [{}] },
        ],
      });
      return turns;
    }
    turn(...shardSteps(`${name}/estep`));
    turn(act('evaluate', `${name}/evaluate`));
    turn(act('trainConditional', `${name}/train`));
    turn(act('recordLap', `${name}/record`));
  }
  turn(...shardSteps('final/estep'));
  turn(act('evaluate', 'final/evaluate'));
  turn(act('trainPrior', 'final/prior'));
  turn(act('samplePrior', 'final/prior-samples'));
  turn(act('renderFigures', 'final/figures'));
  turn(act('finishCampaign', 'final/summary'));
  prefix = published('done');
  turn(act('setCampaignStatus', 'campaign/status'));
  turns.push({ commands: [{ kind: 'complete', result: null }] });
  return turns;
}

export function campaignHistory(script: CampaignScript): HistoryJson {
  return buildHistory(
    {
      workflowType: script.workflowType,
      taskQueue: script.cpu,
      input: [script.input],
      ...(script.resumeAtLap !== undefined && { continuedFrom: '00000000-0000-4000-8000-0000000000aa' }),
    },
    campaignTurns(script),
  );
}
