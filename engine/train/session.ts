/**
 * Training over the protocol: `train/start` streams step/eval/probe/status records as `$/progress`
 * and resolves when the run ends; `train/stop` (prompt: within one micro-batch, leaves a
 * checkpoint), `train/pause`, `train/resume`. One run at a time per engine.
 */
import type { EngineServer } from '../server/server';
import { ErrorCode, type TrainParams, type TrainResult } from '../protocol';
import { BadInputError } from '../errors';
import { currentBackend, initBackend } from '../runtime/tfjs/backend';
import { buildRun, prepareInputs, type PreparedRun } from './setup';

let active: { runId: string; run: PreparedRun } | null = null;
let starting: string | null = null;
let counter = 0;

function stateError(message: string): Error {
  const e = new Error(message) as Error & { code: number };
  e.code = ErrorCode.TrainingState;
  return e;
}

function find(runId?: string): PreparedRun {
  if (!active || (runId && runId !== active.runId)) throw stateError(runId ? `no training run '${runId}' is active` : 'no training run is active');
  return active.run;
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
    if (active || starting) throw stateError(`a training run (${active?.runId ?? starting}) is already active: stop it first`);
    const runId = `run-${Date.now().toString(36)}-${++counter}`;
    ctx.progress({ kind: 'status', runId, state: 'starting', totalSteps: p.steps, family: p.family });
    let run: PreparedRun;
    starting = runId; // one run at a time, also while the model is being built
    try {
      const inputs = prepareInputs(specOf(p));
      if (!currentBackend()) await initBackend('auto');
      run = await buildRun(inputs, runId, (e) => ctx.progress(e));
    } catch (e) {
      ctx.progress({ kind: 'status', runId, state: 'failed', message: (e as Error).message });
      throw e;
    } finally {
      starting = null;
    }
    active = { runId, run };
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
      run.dispose();
      active = null;
    }
  });
  server.on('train/stop', async (p) => {
    if (!active) return { stopped: false };
    find(p.runId).trainer.control.stopRequested = true;
    return { stopped: true };
  });
  server.on('train/pause', async (p) => {
    find(p.runId).trainer.control.paused = true;
    return { paused: true };
  });
  server.on('train/resume', async (p) => {
    find(p.runId).trainer.control.paused = false;
    return { resumed: true };
  });
}
