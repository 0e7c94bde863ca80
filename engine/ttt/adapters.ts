/**
 * Test-time LoRA adapters on any causal family: the optional `adapters` input of a program
 * (ForwardInputs.adapters) and the one helper every family's projection sites call.
 *
 * Follows parameter-golf PR #1784's `BatchedLinearLoRA` / `BatchedTTTLoRA` (shared/research/
 * paramgolf.md §2.3): per module `lora(x) = ((x @ Aᵀ) @ Bᵀ)·(alpha/rank)` with A (r, in) and B (out, r),
 * one adapter per *virtual* layer (a looped block gets a new one at each visit), and these sites:
 *   q, k, v  read the attention input n, added to the projection before QK-norm / RoPE;
 *   o        reads the attention input n too (not the attention output), added after Wout;
 *   mlp      reads the MLP input, added to the MLP output (before any per-channel scale);
 *   head     reads the final-normed hidden state, added to the logits before the soft cap.
 * The same sites exist in every causal family here (a-gpt's causal families, gpt2, autoresearch,
 * paramgolf), so one definition serves all of them. Without adapters a program is unchanged (and
 * the ONNX graphs never see any).
 *
 * Layout: the runtimes hold Aᵀ (in, r) and Bᵀ (r, out), so both products are untransposed 2-D
 * matMuls (the fast path on WASM); names and files use their layout (`q_loras.{s}.A` [r, in]).
 */
import type { ModelConfig } from '../protocol';
import type { FamilyDef, HeadSpec } from '../models/family';
import { applyHead } from '../models/family';
import type { Ops } from '../models/ops';

/** The modules of a layer an adapter can sit on, and the output head. */
export type LayerModule = 'q' | 'k' | 'v' | 'o' | 'mlp';
export type AdapterModule = LayerModule | 'head';
export const LAYER_MODULES: readonly LayerModule[] = ['q', 'k', 'v', 'o', 'mlp'];
export const ADAPTER_MODULES: readonly AdapterModule[] = [...LAYER_MODULES, 'head'];

/** One adapter's factors in the runtime's layout. */
export interface LoraFactors<T> {
  /** Aᵀ (in, r). */
  down: T;
  /** Bᵀ (r, out). */
  up: T;
}

/** What a program adds to its projections: per virtual layer its modules' factors, and the head's. */
export interface Adapters<T> {
  /** alpha / rank. */
  scale: number;
  layers: Partial<Record<LayerModule, LoraFactors<T>>>[];
  head?: LoraFactors<T>;
}

/** The low-rank delta ((x Aᵀ)·scale) Bᵀ of one adapter on x (…, in) → (…, out). */
export function loraDelta<T>(o: Ops<T>, f: LoraFactors<T>, scale: number, x: T): T {
  return o.matmul(o.mul(o.matmul(x, f.down), scale), f.up);
}

/**
 * y plus the delta of the adapter on (layer, module) applied to `input`, or y itself when the
 * program has no adapters there. Every family calls this at its projection sites.
 */
export function withAdapter<T>(o: Ops<T>, adapters: Adapters<T> | undefined, layer: number, module: LayerModule, input: T, y: T): T {
  const f = adapters?.layers[layer]?.[module];
  return f ? o.add(y, loraDelta(o, f, adapters!.scale, input)) : y;
}

/** The family's head on h with the head adapter's delta added before the soft cap. */
export function adaptedHead<T>(o: Ops<T>, spec: HeadSpec, h: T, adapters: Adapters<T> | undefined): T {
  let logits = applyHead(o, { ...spec, softcap: undefined }, h);
  if (adapters?.head) logits = o.add(logits, loraDelta(o, adapters.head, adapters.scale, h));
  if (spec.softcap) logits = o.mul(o.tanh(o.div(logits, spec.softcap)), spec.softcap);
  return logits;
}

// ---------------------------------------------------------------------------------------------
// Names and shapes (the record's `BatchedTTTLoRA` attribute names)
// ---------------------------------------------------------------------------------------------

/** The families whose programs call withAdapter. */
const ADAPTED_FAMILIES = new Set<ModelConfig['family']>(['base', 'matched', 'adaptive', 'gpt2', 'autoresearch', 'paramgolf']);

export function supportsAdapters(def: FamilyDef, c: ModelConfig): boolean {
  return ADAPTED_FAMILIES.has(c.family) && def.objective(c) === 'causal';
}

/** One adapter of a model: its name (`k_loras.3`, `lm_head_lora`), where it sits, its widths. */
export interface AdapterSpec {
  name: string;
  module: AdapterModule;
  /** The virtual layer (the record's slot); null for the head. */
  layer: number | null;
  inFeatures: number;
  outFeatures: number;
}

const RECORD_NAME: Record<LayerModule, string> = { q: 'q_loras', k: 'k_loras', v: 'v_loras', o: 'o_loras', mlp: 'mlp_loras' };

export function adapterName(module: AdapterModule, layer: number | null): string {
  return module === 'head' ? 'lm_head_lora' : `${RECORD_NAME[module]}.${layer}`;
}

/**
 * Every adapter of `modules` on this model, in the record's order: the head, then per module kind
 * its slots (q, v, k, mlp, o — their `delta_fro` order).
 */
export function adapterSpecs(def: FamilyDef, c: ModelConfig, modules: readonly AdapterModule[]): AdapterSpec[] {
  const C = c.n_embd, kvOut = def.kvHeads(c) * (C / c.n_head), L = def.layerCount(c);
  const out: AdapterSpec[] = [];
  if (modules.includes('head')) out.push({ name: adapterName('head', null), module: 'head', layer: null, inFeatures: C, outFeatures: c.vocab_size });
  const width: Record<LayerModule, number> = { q: C, k: kvOut, v: kvOut, o: C, mlp: C };
  for (const m of ['q', 'v', 'k', 'mlp', 'o'] as const) {
    if (!modules.includes(m)) continue;
    for (let l = 0; l < L; l++) out.push({ name: adapterName(m, l), module: m, layer: l, inFeatures: C, outFeatures: width[m] });
  }
  return out;
}

/** Factors by adapter name, assembled into a program input. */
export function assembleAdapters<T>(specs: readonly AdapterSpec[], factors: Map<string, LoraFactors<T>>, layers: number, scale: number): Adapters<T> {
  const a: Adapters<T> = { scale, layers: Array.from({ length: layers }, () => ({})) };
  for (const s of specs) {
    const f = factors.get(s.name);
    if (!f) continue;
    if (s.module === 'head') a.head = f;
    else a.layers[s.layer!][s.module] = f;
  }
  return a;
}
