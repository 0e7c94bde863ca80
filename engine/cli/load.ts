/**
 * How every CLI command gets its model: the checkpoint read and validated first (a bad path or file
 * fails before any backend is probed), then the runtime chosen and the model's runner built. `key`
 * picks a second model's flags (`--model-b`, `--config-b`, `--tokenizer-b` for compare).
 */
import type { BackendChoice } from '../protocol';
import { readCheckpoint, type CheckpointRead } from '../io/checkpoint';
import { familyDef } from '../models/registry';
import { modelInfo, tokenizerFor, type LoadedModel } from '../runtime/loaded';
import { createRunner, initRuntime } from '../runtime/select';

type Opts = Record<string, unknown>;

/** --backend, else $HEADLENS_BACKEND, else auto. */
export function backendOf(opts: Opts): BackendChoice {
  return ((opts.backend as string | undefined) ?? process.env.HEADLENS_BACKEND ?? 'auto') as BackendChoice;
}

const flag = (name: string, key: string) => (key ? `${name}-${key}` : name);

/** The checkpoint: read and validated before any backend is probed. */
export function readModel(opts: Opts, key = ''): Promise<CheckpointRead> {
  return readCheckpoint({ path: opts[flag('model', key)] as string | undefined, config: opts[flag('config', key)] as string | undefined });
}

/** The runtime and the model's runner, once every input has been checked. */
export async function setupModel(opts: Opts, ck: CheckpointRead, key = ''): Promise<LoadedModel> {
  const state = await initRuntime(backendOf(opts), (opts.threads as number | undefined) ?? 0);
  const { tokenizer, note } = tokenizerFor((opts[flag('model', key)] as string | undefined) ?? null, opts[flag('tokenizer', key)] as string | undefined);
  const runner = await createRunner(familyDef(ck.config.family), ck.config, ck.weights, state);
  const info = modelInfo(ck, tokenizer.info);
  if (note) info.note = info.note ? `${info.note}; ${note}` : note;
  return { info, config: ck.config, weights: ck.weights, tokenizer, runner, dispose: () => runner.dispose() };
}
