/**
 * a-gpt's initialisation, seeded (not bit-identical to torch's generator, the same distributions):
 * - causal families (base_gpt.py, a_gpt.py) keep PyTorch's module defaults: Embedding N(0, 1);
 *   Linear weight and bias U(±1/√fan_in); LayerNorm 1 / 0; nn.MultiheadAttention in_proj
 *   xavier-uniform with zero biases, out_proj U(±1/√D) with zero bias; to_B zero (LoRA-style).
 * - diffusion families apply `_init_weights` after construction: every nn.Linear (out_proj, to_A
 *   and to_B included) and Embedding N(0, 0.02), biases zero; in_proj stays xavier-uniform.
 */
import type { ModelConfig } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { ParamSpec } from './family';
import { isDiffusion } from './config';

/** mulberry32: small, fast, seeded; good enough for initialisation and sampling. */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function normalSampler(rng: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = rng();
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

type Init = { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number } | { kind: 'const'; value: number };

function initFor(name: string, shape: number[], diffusion: boolean): Init {
  const fanIn = shape.length === 2 ? shape[1] : 0;
  if (name.endsWith('in_proj_weight')) return { kind: 'uniform', bound: Math.sqrt(6 / (shape[0] + shape[1])) };
  if (name.endsWith('in_proj_bias') || name.endsWith('out_proj.bias')) return { kind: 'const', value: 0 };
  if (/ln_\d\.weight$|ln_f\.weight$/.test(name)) return { kind: 'const', value: 1 };
  if (/ln_\d\.bias$|ln_f\.bias$/.test(name)) return { kind: 'const', value: 0 };
  if (diffusion) return { kind: 'normal', std: 0.02 };
  if (/(wte)\.weight$/.test(name)) return { kind: 'normal', std: 1 };
  if (name.endsWith('to_B.weight')) return { kind: 'const', value: 0 };
  if (name.endsWith('.bias')) {
    return { kind: 'uniform', bound: 0 }; // replaced below with the weight's fan-in
  }
  return { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) };
}

export function agptInitialWeights(config: ModelConfig, seed: number, params: ParamSpec[]): Map<string, HostTensor> {
  const rng = makeRng(seed);
  const normal = normalSampler(rng);
  const diffusion = isDiffusion(config.family);
  const out = new Map<string, HostTensor>();
  const list = params.map((p) => [p.name, p.shape] as [string, number[]]);
  const shapes = new Map(list);
  for (const [name, shape] of list) {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    let init = initFor(name, shape, diffusion);
    if (init.kind === 'uniform' && init.bound === 0) {
      const w = shapes.get(name.replace(/\.bias$/, '.weight'));
      init = { kind: 'uniform', bound: w ? 1 / Math.sqrt(w[1]) : 0 };
    }
    for (let i = 0; i < n; i++) {
      if (init.kind === 'normal') values[i] = normal() * init.std;
      else if (init.kind === 'uniform') values[i] = (rng() * 2 - 1) * init.bound;
      else values[i] = init.value;
    }
    out.set(name, { shape, dtype: 'float32', values });
  }
  return out;
}
