/**
 * Training over the protocol: `train/start` streams step/eval/probe/status records as `$/progress`
 * and resolves when the run ends; `train/stop` (prompt: within one micro-batch, leaves a
 * checkpoint), `train/pause`, `train/resume`. One train/start run at a time per engine; the
 * controls also reach the runs other methods train through the shared trainer (PonderTTT's layer,
 * Temporal LoRA), which join through `trackRun`.
 */
import type { EngineServer } from '../server/server';
import { ErrorCode, type TrainParams, type TrainResult } from '../protocol';
import { BadInputError } from '../errors';
import { currentBackend, initBackend } from '../runtime/tfjs/backend';
import { buildRun, prepareInputs, type PreparedRun } from './setup';
import type { TrainerControl } from './trainer';

/** The train/start run's id, from the building of its model to its end: one at a time. */
let active: string | null = null;
let counter = 0;

/** Every run in progress by id, in start order (train/start's and those that joined). */
const runs = new Map<string, TrainerControl>();

/** A run the controls reach until the returned function is called (when it ends). */
export function trackRun(runId: string, control: TrainerControl): () => void {
  runs.set(runId, control);
  return () => void runs.delete(runId);
}

function stateError(message: string): Error {
  const e = new Error(message) as Error & { code: number };
  e.code = ErrorCode.TrainingState;
  return e;
}

/** The run named, or without a name the latest one. */
function find(runId?: string): TrainerControl {
  const control = runId ? runs.get(runId) : [...runs.values()].pop();
  if (!control) throw stateError(runId ? `no training run '${runId}' is active` : 'no training run is active');
  return control;
}

function specOf(p: TrainParams) {
  if (!Number.isInteger(p.steps) || p.steps <= 0) throw new BadInputError(`train/start: steps must be a positive integer, got ${p.steps}`);
  return {
    init: p.init,
    config: p.config,
    family: p.family,
    data: p.data ?? [],
    resume: p.resume,
    overfitBatch: p.overfitBatch,
    options: {
      steps: p.steps,
      lr: p.lr,
      minLr: p.minLr,
      warmup: p.warmup,
      batchSize: p.batchSize,
      seqLen: p.seqLen,
      gradAccum: p.gradAccum,
      weightDecay: p.weightDecay,
      betas: p.betas,
      clip: p.clip,
      evalInterval: p.evalInterval,
      seed: p.seed,
      out: p.out,
      probeInterval: p.probeInterval,
      evalIters: p.evalIters,
      checkpointInterval: p.checkpointInterval,
    },
  };
}

export function registerTrainingHandlers(server: EngineServer): void {
  server.on('train/start', async (p, ctx) => {
    if (active) throw stateError(`a training run (${active}) is already active: stop it first`);
    const runId = `run-${Date.now().toString(36)}-${++counter}`;
    ctx.progress({ kind: 'status', runId, state: 'starting', totalSteps: p.steps, family: p.family });
    active = runId;
    try {
      let run: PreparedRun;
      try {
        const inputs = prepareInputs(specOf(p));
        if (!currentBackend()) await initBackend('auto');
        run = await buildRun(inputs, runId, (e) => ctx.progress(e));
      } catch (e) {
        ctx.progress({ kind: 'status', runId, state: 'failed', message: (e as Error).message });
        throw e;
      }
      const untrack = trackRun(runId, run.trainer.control);
      const stopOnCancel = setInterval(() => {
        if (ctx.token.cancelled) run.trainer.control.stopRequested = true;
      }, 50);
      try {
        const result = await run.trainer.run();
        const state = result.stopped ? 'stopped' : 'finished';
        ctx.progress({ kind: 'status', runId, state, checkpoint: result.checkpoint ?? undefined, step: run.trainer.step, totalSteps: p.steps });
        const out: TrainResult = {
          runId,
          steps: run.trainer.step,
          finalLoss: run.trainer.lastLoss,
          bestValLoss: run.trainer.bestValLoss,
          checkpoint: result.checkpoint,
          stoppedEarly: result.stopped,
        };
        return out;
      } catch (e) {
        ctx.progress({ kind: 'status', runId, state: 'failed', message: (e as Error).message });
        throw e;
      } finally {
        clearInterval(stopOnCancel);
        untrack();
        run.dispose();
      }
    } finally {
      active = null;
    }
  });
  server.on('train/stop', async (p) => {
    if (!runs.size) return { stopped: false };
    find(p.runId).stopRequested = true;
    return { stopped: true };
  });
  server.on('train/pause', async (p) => {
    find(p.runId).paused = true;
    return { paused: true };
  });
  server.on('train/resume', async (p) => {
    find(p.runId).paused = false;
    return { resumed: true };
  });
}
