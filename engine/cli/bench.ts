/**
 * `headlens bench`: medians of the analysis of one 256-token window with full-size a-gpt models
 * (4 layers, d 256, 4 heads, T 256, vocab 50257; seeded random weights) on the active backend,
 * side by side per family. Training throughput is measured by the trainer's own benchmark.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendChoice, Family } from '../protocol';
import { initBackend } from '../runtime/tfjs/backend';
import { Model } from '../models/model';
import { defaultConfig } from '../models/config';
import { analyzeText, type LoadedModel } from '../analysis/analyze';
import { countParams, isAdaptive, isDiffusion } from '../models/config';
import { parseArgs } from './args';
import { tokenize } from '../tokenizers/gpt2';

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

async function timeAnalysis(lm: LoadedModel, text: string, audit: number, runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const t0 = performance.now();
    const gen = analyzeText(lm, { text, window: 256, auditPositions: audit });
    for (;;) if ((await gen.next()).done) break;
    if (i > 0) times.push(performance.now() - t0); // the first run warms up kernels and caches
  }
  return times;
}

export async function runBench(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { backend: 'string', runs: 'int', families: 'string', debug: 'boolean' }, 'bench');
  const state = await initBackend((opts.backend as BackendChoice) ?? 'auto');
  const runs = (opts.runs as number | undefined) ?? 5;
  const families = ((opts.families as string | undefined) ?? 'base,adaptive,matched,diffusion,adaptive_diffusion').split(',') as Family[];
  let long = BENCH_TEXT;
  while (long.length < 4000) long += BENCH_TEXT;
  const text = long.slice(0, tokenize(long)[255].end); // exactly one window of 256 tokens
  process.stdout.write(`analysis of one 256-token window, full-size models, ${state.info.name} on ${state.device.name}; median of ${runs} runs (ms)\n`);
  process.stdout.write(`${'family'.padEnd(20)}${'params'.padStart(12)}${'analysis'.padStart(12)}${'+ audit 4'.padStart(12)}${'logits only'.padStart(14)}\n`);
  for (const family of families) {
    const config = defaultConfig(family, { n_layer: 4, block_size: 256, n_embd: 256, n_head: 4, vocab_size: 50257 });
    const model = Model.init(config, 1);
    const lm: LoadedModel = {
      model,
      info: { path: 'bench', family, config, paramCount: countParams(config), configSources: {}, tokenizer: 'gpt2', causal: !isDiffusion(family), adaptive: isAdaptive(family) },
    };
    const plain = median(await timeAnalysis(lm, text, 0, runs));
    const audited = lm.info.causal && lm.info.adaptive ? median(await timeAnalysis(lm, text, 4, Math.max(1, runs >> 1))) : NaN;
    const ids = tf.tensor2d(Array.from({ length: 256 }, (_, i) => (i * 7919) % 50257), [1, 256], 'int32');
    const fwd: number[] = [];
    for (let i = 0; i < runs + 1; i++) {
      const t0 = performance.now();
      const l = model.logits(ids);
      await l.data();
      l.dispose();
      if (i > 0) fwd.push(performance.now() - t0);
    }
    ids.dispose();
    model.dispose();
    const f = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
    process.stdout.write(`${family.padEnd(20)}${countParams(config).toLocaleString('en-US').padStart(12)}${f(plain).padStart(12)}${f(audited).padStart(12)}${f(median(fwd)).padStart(14)}\n`);
  }
  return 0;
}
