/**
 * `headlens bench`: medians of the analysis of one window with full-size models (seeded random
 * weights), side by side per runtime in one run: onnxruntime on the CPU with 1 and 2 threads (and
 * any GPU provider asked for), and TensorFlow.js WASM; with and without the causality audit.
 * Training throughput is measured by `headlens train-bench`.
 */
import type { Family, ModelConfig } from '../protocol';
import { BadInputError } from '../errors';
import { familyDef } from '../models/registry';
import { analyzeText } from '../analysis/analyze';
import { sweep } from '../analysis/interventions';
import { GPT2_TOKENIZER, modelInfo, type LoadedModel, type TextTokenizer } from '../runtime/loaded';
import { chooseOrt, type OrtRequest } from '../runtime/onnx/ort';
import { OrtRunner } from '../runtime/onnx/runner';
import { initBackend, type TfjsChoice } from '../runtime/tfjs/backend';
import { TfModel } from '../runtime/tfjs/model';
import { TfRunner } from '../runtime/tfjs/runner';
import type { InferenceRuntime } from '../runtime/runner';
import type { HostTensor } from '../io/tensor';
import { parseArgs } from './args';

const BENCH_TEXT = `import numpy as np

def attention(q, k, v, mask=None):
    """Scaled dot-product attention over the last two axes."""
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v

class Head:
    def __init__(self, d_model, d_head, rng):
        self.wq = rng.normal(size=(d_model, d_head)) / np.sqrt(d_model)
        self.wk = rng.normal(size=(d_model, d_head)) / np.sqrt(d_model)
        self.wv = rng.normal(size=(d_model, d_head)) / np.sqrt(d_model)
`;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Text of exactly `n` GPT-2 tokens. */
export function benchText(n: number): string {
  let long = BENCH_TEXT;
  while (GPT2_TOKENIZER.tokenize(long).length < n + 1) long += BENCH_TEXT;
  return long.slice(0, GPT2_TOKENIZER.tokenize(long)[n - 1].end);
}

async function timeAnalysis(lm: LoadedModel, text: string, window: number, audit: number, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const t0 = performance.now();
    const gen = analyzeText(lm, { text, window, auditPositions: audit });
    for (;;) if ((await gen.next()).done) break;
    if (i > 0) times.push(performance.now() - t0); // the first run warms up kernels and caches
  }
  return median(times);
}

/** One ablation sweep: every head in turn under `mode`, the whole window scored per head (and once without). */
async function timeSweep(lm: LoadedModel, text: string, mode: 'zero' | 'adaptive-off', runs: number): Promise<number> {
  const ids = Int32Array.from(lm.tokenizer.tokenize(text).map((t) => t.id));
  const times: number[] = [];
  for (let i = 0; i < Math.min(runs, 3) + 1; i++) {
    const t0 = performance.now();
    const gen = sweep(lm, ids, mode, 'head');
    for (;;) if ((await gen.next()).done) break;
    if (i > 0) times.push(performance.now() - t0);
  }
  return median(times);
}

/** A runner for one column: `onnx-cpu:2` (threads), `onnx-webgpu`, `wasm`, `cpu`. */
async function runnerFor(spec: string, config: ModelConfig, weights: Map<string, HostTensor>): Promise<InferenceRuntime | string> {
  const [name, threads] = spec.split(':');
  if (name.startsWith('onnx-')) {
    const choice = await chooseOrt(name as OrtRequest, threads ? +threads : 0);
    if (!('provider' in choice)) return choice.skipped.map((s) => s.reason).join('; ');
    return OrtRunner.create(familyDef(config.family), config, weights, choice);
  }
  const state = await initBackend(name as TfjsChoice);
  return new TfRunner(new TfModel(config, weights), state.info.name, state.device);
}

export const BENCH_CONFIGS: Record<string, { family: Family; config: Partial<ModelConfig>; tokens: number }> = {
  base: { family: 'base', config: { n_layer: 4, block_size: 256, n_embd: 256, n_head: 4, vocab_size: 50257 }, tokens: 256 },
  adaptive: { family: 'adaptive', config: { n_layer: 4, block_size: 256, n_embd: 256, n_head: 4, vocab_size: 50257 }, tokens: 256 },
  matched: { family: 'matched', config: { n_layer: 6, block_size: 256, n_embd: 256, n_head: 4, vocab_size: 50257 }, tokens: 256 },
  diffusion: { family: 'diffusion', config: { n_layer: 4, block_size: 256, n_embd: 256, n_head: 4, vocab_size: 50257 }, tokens: 256 },
  adaptive_diffusion: { family: 'adaptive_diffusion', config: { n_layer: 4, block_size: 256, n_embd: 256, n_head: 4, vocab_size: 50257 }, tokens: 256 },
  // GPT-2 small (124M) at its full context
  gpt2: { family: 'gpt2', config: { n_layer: 12, n_head: 12, n_embd: 768, vocab_size: 50257, block_size: 1024 }, tokens: 1024 },
  // parameter-golf #1784 with the record's defaults: 11 blocks looped to 17 virtual layers, width 512, vocab 8192
  paramgolf: { family: 'paramgolf', config: {}, tokens: 2048 },
  // karpathy/autoresearch's default run (train.py:433-479): depth 8, width 512, 4 heads of 128, SSSL windows over 2048
  autoresearch: { family: 'autoresearch', config: { n_layer: 8, n_embd: 512, n_head: 4, n_kv_head: 4, vocab_size: 8192, sequence_len: 2048, block_size: 2048, window_pattern: 'SSSL' }, tokens: 2048 },
};

/** GPT-2 ids folded into a smaller vocabulary (paramgolf's 8192): the timing does not depend on which ids run. */
function benchTokenizer(vocab: number): TextTokenizer {
  const base = GPT2_TOKENIZER;
  if (vocab >= base.info.vocabSize) return base;
  return Object.assign(Object.create(base) as TextTokenizer, {
    info: { ...base.info, vocabSize: vocab },
    tokenize: (text: string, baseOffset?: number) => base.tokenize(text, baseOffset).map((t) => ({ ...t, id: t.id % vocab })),
  });
}

export async function runBench(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { runtimes: 'string', runs: 'int', models: 'string', debug: 'boolean', backend: 'string' }, 'bench');
  const runs = (opts.runs as number | undefined) ?? 5;
  const models = ((opts.models as string | undefined) ?? 'base,adaptive').split(',');
  const runtimes = ((opts.runtimes as string | undefined) ?? (opts.backend as string | undefined) ?? 'onnx-cpu:1,onnx-cpu:2,wasm').split(',');
  for (const m of models) if (!BENCH_CONFIGS[m]) throw new BadInputError(`bench: unknown model '${m}' (use ${Object.keys(BENCH_CONFIGS).join(', ')})`);
  process.stdout.write(`analysis of one window, full-size models with seeded random weights; median of ${runs} runs, ms\n`);
  process.stdout.write(`${'model'.padEnd(32)}${'tokens'.padStart(7)}${runtimes.map((r) => r.padStart(14)).join('')}\n`);
  for (const m of models) {
    const { family, config: partial, tokens } = BENCH_CONFIGS[m];
    const config = familyDef(family).defaults(family, partial);
    const weights = familyDef(family).init(config, 1);
    const text = benchText(tokens);
    const rows: Record<string, string[]> = { analysis: [], '+ audit 4': [] };
    // the sweep of every head (issue: all 16 heads of the full-size adaptive model on one window)
    const sweeps = family === 'adaptive' ? (['adaptive-off', 'zero'] as const) : [];
    for (const mode of sweeps) rows[`sweep ${config.n_layer * config.n_head} ${mode}`] = [];
    const tokenizer = benchTokenizer(config.vocab_size);
    const info = modelInfo({ path: 'bench', config, sources: {}, weights }, tokenizer.info);
    for (const spec of runtimes) {
      const runner = await runnerFor(spec, config, weights);
      if (typeof runner === 'string') {
        for (const cells of Object.values(rows)) cells.push('—');
        process.stderr.write(`${spec}: ${runner}\n`);
        continue;
      }
      const lm: LoadedModel = { info, config, weights, tokenizer, runner, dispose: () => runner.dispose() };
      rows.analysis.push((await timeAnalysis(lm, text, tokens, 0, runs)).toFixed(0));
      rows['+ audit 4'].push(info.futureLeak ? (await timeAnalysis(lm, text, tokens, 4, runs)).toFixed(0) : '—');
      for (const mode of sweeps) rows[`sweep ${config.n_layer * config.n_head} ${mode}`].push((await timeSweep(lm, text, mode, runs)).toFixed(0));
      await lm.dispose();
    }
    for (const [label, cells] of Object.entries(rows)) {
      if (label !== 'analysis' && cells.every((c) => c === '—')) continue;
      process.stdout.write(`${`${m} ${label}`.padEnd(32)}${String(tokens).padStart(7)}${cells.map((c) => c.padStart(14)).join('')}\n`);
    }
  }
  return 0;
}
