/**
 * A model ready for inference: the checkpoint read from disk, its tokenizer, what the views need
 * to know about it (ModelInfo), and the runner of the chosen runtime (a traced onnxruntime session,
 * or TensorFlow.js).
 */
import type { ModelConfig, ModelInfo, TokenizerInfo } from '../protocol';
import type { HostTensor } from '../io/tensor';
import { readCheckpoint, type CheckpointRead, type LoadRequest } from '../io/checkpoint';
import { countParams, familyDef } from '../models/registry';
import { kvHeadOf } from '../models/layers';
import type { Tokenizer } from '../tokenizers/types';
import { gpt2Tokenizer } from '../tokenizers/gpt2';
import { loadTokenizerFor } from '../tokenizers/index';
import type { InferenceRuntime } from './runner';
import { createRunner, initRuntime, type RuntimeState } from './select';

/** A tokenizer and what the views are told about it. */
export interface TextTokenizer extends Tokenizer {
  readonly info: TokenizerInfo;
}

function withInfo(t: Tokenizer, source: string): TextTokenizer {
  return Object.assign(Object.create(t) as Tokenizer, { info: { kind: t.kind, source, vocabSize: t.vocabSize } }) as TextTokenizer;
}

export const GPT2_TOKENIZER: TextTokenizer = withInfo(gpt2Tokenizer(), 'GPT-2 BPE (r50k_base, built in)');

/**
 * The model's own tokenizer when its folder has one (tokenizer.json, vocab.json + merges.txt,
 * tokenizer.pkl, a SentencePiece .model), else GPT-2 BPE. `explicit` is a tokenizer file the user
 * named: its problems are errors; a file found by looking is skipped with a note when it does not load.
 */
export function tokenizerFor(modelPath: string | null, explicit?: string): { tokenizer: TextTokenizer; note?: string } {
  if (!modelPath && !explicit) return { tokenizer: GPT2_TOKENIZER };
  if (explicit) {
    const found = loadTokenizerFor(modelPath ?? explicit, explicit);
    return { tokenizer: withInfo(found.tokenizer, found.file ?? found.description) };
  }
  try {
    const found = loadTokenizerFor(modelPath!);
    return found.file ? { tokenizer: withInfo(found.tokenizer, found.file) } : { tokenizer: GPT2_TOKENIZER };
  } catch (e) {
    return { tokenizer: GPT2_TOKENIZER, note: `the tokenizer file beside the model does not load (${(e as Error).message}); using GPT-2 BPE` };
  }
}
export interface LoadedModel {
  info: ModelInfo;
  config: ModelConfig;
  weights: Map<string, HostTensor>;
  tokenizer: TextTokenizer;
  runner: InferenceRuntime;
  dispose(): Promise<void>;
}

export function modelInfo(ck: CheckpointRead, tokenizer: TokenizerInfo): ModelInfo {
  const c = ck.config, def = familyDef(c.family);
  const kv = def.kvHeads(c);
  return {
    path: ck.path,
    family: c.family,
    config: c,
    paramCount: countParams(c),
    configSources: ck.sources,
    tokenizer,
    causal: def.objective(c) === 'causal',
    adaptive: def.adaptive(c),
    futureLeak: def.futureLeak(c),
    layers: def.layerCount(c),
    heads: c.n_head,
    kvHeads: kv,
    kvHeadOf: kvHeadOf(c.n_head, kv),
    attentionWindows: def.attentionWindows(c),
    signals: def.signals(c),
    note: ck.note,
  };
}

/** Reads the checkpoint and builds its runner on the current runtime (initialising `auto` if none). */
export async function loadModel(req: LoadRequest & { tokenizer?: string }, state?: RuntimeState): Promise<LoadedModel> {
  const ck = await readCheckpoint(req);
  const { tokenizer, note } = tokenizerFor(req.path ?? null, req.tokenizer);
  const rt = state ?? (await initRuntime());
  const runner = await createRunner(familyDef(ck.config.family), ck.config, ck.weights, rt);
  const info = modelInfo(ck, tokenizer.info);
  if (note) info.note = info.note ? `${info.note}; ${note}` : note;
  return {
    info,
    config: ck.config,
    weights: ck.weights,
    tokenizer,
    runner,
    dispose: () => runner.dispose(),
  };
}
