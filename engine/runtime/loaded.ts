/**
 * A model ready for inference: the checkpoint read from disk, its tokenizer, what the views need
 * to know about it (ModelInfo), and the runner of the chosen runtime (a traced onnxruntime session,
 * or TensorFlow.js).
 */
import type { ModelConfig, ModelInfo, TokenInfo, TokenizerInfo } from '../protocol';
import type { HostTensor } from '../io/tensor';
import { readCheckpoint, type CheckpointRead, type LoadRequest } from '../io/checkpoint';
import { countParams, familyDef } from '../models/registry';
import { kvHeadOf } from '../models/layers';
import * as gpt2 from '../tokenizers/gpt2';
import type { InferenceRuntime } from './runner';
import { createRunner, initRuntime, type RuntimeState } from './select';

/** What the analysis needs from a tokenizer. */
export interface TextTokenizer {
  readonly info: TokenizerInfo;
  tokenize(text: string, baseOffset?: number): TokenInfo[];
  tokenText(id: number): string;
  /** UTF-8 bytes the token stands for (bits per byte). */
  tokenBytes(id: number): number;
}

export const GPT2_TOKENIZER: TextTokenizer = {
  info: { kind: 'gpt2', source: 'GPT-2 BPE (built in)', vocabSize: gpt2.GPT2_VOCAB_SIZE },
  tokenize: gpt2.tokenize,
  tokenText: gpt2.tokenText,
  tokenBytes: (id) => gpt2.tokenByteLength(id),
};

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
export async function loadModel(req: LoadRequest, state?: RuntimeState): Promise<LoadedModel> {
  const ck = await readCheckpoint(req);
  const rt = state ?? (await initRuntime());
  const tokenizer = GPT2_TOKENIZER;
  const runner = await createRunner(familyDef(ck.config.family), ck.config, ck.weights, rt);
  return {
    info: modelInfo(ck, tokenizer.info),
    config: ck.config,
    weights: ck.weights,
    tokenizer,
    runner,
    dispose: () => runner.dispose(),
  };
}
