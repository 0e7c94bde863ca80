/**
 * PonderTTT over the protocol, on the loaded model as the frozen base:
 *   ponder/run    the document in chunks through both paths and the gate; one progress message per
 *                 chunk (its decision, signal and τ), `$/cancel` between batches of chunks;
 *   ponder/train  the TTT layer trained with the base frozen, streaming the trainer's step / eval /
 *                 status records (the sidebar monitor draws them); `$/cancel` stops it with a checkpoint.
 * The runners of the last (base, TTT file) pair are kept for the next request and freed when
 * another pair is asked for.
 */
import * as fs from 'node:fs';
import type { EngineServer } from '../server/server';
import { ErrorCode, type PonderTrainParams, type TrainResult } from '../protocol';
import { BadInputError } from '../errors';
import { readGivenConfig } from '../io/checkpoint';
import type { LoadedModel } from '../runtime/loaded';
import { currentRuntime, initRuntime } from '../runtime/select';
import { currentBackend, initBackend } from '../runtime/tfjs/backend';
import { trackRun } from '../train/session';
import { readTttCheckpoint, type TttCheckpoint } from './checkpoint';
import { createPonderEngine, encodeResult, ponderDocument, trainedChunk, type PonderEngine } from './run';
import { buildPonderRun, preparePonderTraining } from './train';

interface Cached {
  model: LoadedModel;
  key: string;
  ttt: TttCheckpoint;
  engine: PonderEngine;
}

function stateError(message: string): Error {
  const e = new Error(message) as Error & { code: number };
  e.code = ErrorCode.TrainingState;
  return e;
}

export function registerPonderMethods(server: EngineServer, model: () => LoadedModel): void {
  let cached: Cached | null = null;
  let training = false;

  async function engineFor(lm: LoadedModel, file: string, tttConfig: string | Record<string, unknown> | undefined, log: (m: string) => void): Promise<Cached> {
    if (typeof file !== 'string' || !file) throw new BadInputError('ponder/run needs `ttt`: the path of a TTT-layer .safetensors');
    const stat = fs.existsSync(file) ? fs.statSync(file) : null;
    const key = JSON.stringify([file, stat?.mtimeMs ?? 0, tttConfig ?? null]);
    if (cached && cached.model === lm && cached.key === key) return cached;
    const ttt = readTttCheckpoint(file, { base: { config: lm.config, path: lm.info.path }, given: readGivenConfig(tttConfig) });
    if (lm.info.causal === false) throw new BadInputError(`${lm.info.path}: PonderTTT needs a causal base model (this one is ${lm.config.family})`);
    const engine = await createPonderEngine(lm, ttt, currentRuntime() ?? (await initRuntime()), log);
    const old = cached;
    cached = { model: lm, key, ttt, engine };
    await old?.engine.dispose();
    return cached;
  }

  server.on('ponder/run', async (p, ctx) => {
    const lm = model();
    if (typeof p.text !== 'string' || !p.text) throw new BadInputError('ponder/run needs a non-empty `text`');
    if (p.targetRate !== undefined && !(p.targetRate >= 0 && p.targetRate <= 1)) throw new BadInputError(`ponder/run: targetRate must be in [0, 1], got ${p.targetRate}`);
    const c = await engineFor(lm, p.ttt, p.tttConfig, (m) => ctx.log(m));
    const tokens = lm.tokenizer.tokenize(p.text);
    const ids = Int32Array.from(tokens, (t) => t.id);
    const r = await ponderDocument(c.engine, ids, { chunk: p.chunk ?? trainedChunk(c.ttt), targetRate: p.targetRate }, ctx.token, (chunk) => ctx.progress(chunk));
    return encodeResult(r, tokens, c.ttt.note);
  });

  server.on('ponder/train', async (p: PonderTrainParams, ctx): Promise<TrainResult> => {
    if (training) throw stateError('a PonderTTT training run is already active: stop it first');
    if (!Number.isInteger(p.steps) || p.steps <= 0) throw new BadInputError(`ponder/train: steps must be a positive integer, got ${p.steps}`);
    const base = p.base ?? model().info.path;
    const runId = `ponder-${Date.now().toString(36)}`;
    training = true;
    try {
      ctx.progress({ kind: 'status', runId, state: 'starting', totalSteps: p.steps });
      const inputs = await preparePonderTraining({
        base, baseConfig: p.baseConfig, ttt: p.ttt, tttConfig: p.tttConfig, chunk: p.chunk, sslWeight: p.sslWeight, data: p.data ?? [], resume: p.resume,
        options: { steps: p.steps, lr: p.lr, batchSize: p.batchSize, evalInterval: p.evalInterval, seed: p.seed, out: p.out },
      });
      if (!currentBackend()) await initBackend('auto');
      const run = await buildPonderRun(inputs, runId, (e) => ctx.progress(e));
      const stopOnCancel = setInterval(() => {
        if (ctx.token.cancelled) run.trainer.control.stopRequested = true;
      }, 50);
      const untrack = trackRun(runId, run.trainer.control); // train/stop, pause and resume reach it
      try {
        const result = await run.trainer.run();
        ctx.progress({ kind: 'status', runId, state: result.stopped ? 'stopped' : 'finished', checkpoint: result.checkpoint ?? undefined, step: run.trainer.step, totalSteps: p.steps, family: inputs.base.config.family });
        return { runId, steps: run.trainer.step, finalLoss: run.trainer.lastLoss, bestValLoss: run.trainer.bestValLoss, checkpoint: result.checkpoint, stoppedEarly: result.stopped };
      } finally {
        clearInterval(stopOnCancel);
        untrack();
        run.dispose();
      }
    } catch (e) {
      ctx.progress({ kind: 'status', runId, state: 'failed', message: (e as Error).message });
      throw e;
    } finally {
      training = false;
    }
  });
}
