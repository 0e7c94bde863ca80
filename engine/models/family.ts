/**
 * What a model family is: its parameters (PyTorch names, shapes, order), its forward pass as a
 * program over virtual layers written against the op interface, its output head, the signals its
 * mechanisms report, and its initialisation. Every runtime runs these definitions; nothing about
 * a family is written twice.
 */
import type { Family, ModelConfig, SignalSpec } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { FamilyCheckpoint, RawCheckpoint, RawConfig } from '../io/checkpoint';
import type { Ops } from './ops';
import type { Adapters } from '../ttt/adapters';

export interface ParamSpec {
  name: string;
  /** PyTorch shape. */
  shape: number[];
  /** An nn.Linear weight [out, in]: every runtime stores it transposed, [in, out]. */
  linear?: boolean;
  /**
   * A bank of nn.Linear weights [N, out, in] (parameter-golf's `qo_bank`, …): every runtime
   * stores each matrix transposed, [N, in, out], so a sliced row is a ready [in, out] operand.
   */
  linearBank?: boolean;
}

/**
 * The axis permutation from a parameter's PyTorch layout to its stored one (its own inverse),
 * or null when both are the same.
 */
export function storedPermutation(spec: ParamSpec): number[] | null {
  if (spec.linear) return [1, 0];
  if (spec.linearBank) return [0, 2, 1];
  return null;
}

/** The stored shape of a parameter (its PyTorch shape, permuted). */
export function storedShape(spec: ParamSpec): number[] {
  const perm = storedPermutation(spec);
  return perm ? perm.map((a) => spec.shape[a]) : spec.shape;
}

/**
 * Interventions the runtimes can feed every forward (the ablation sweep of the interventions
 * view). Each is (L, H): per virtual layer and query head.
 *   headScale   multiplies the head's attention output (0 = the head switched off);
 *   headMean    1 replaces the head's output by its mean over the window's positions;
 *   adaptiveOff 1 switches the head's adaptive path off (each mechanism says what that means).
 */
export interface Controls<T> {
  headScale: T;
  headMean: T;
  adaptiveOff: T;
}

export interface ForwardInputs<T> {
  ids: T; // (B, T) int32
  positions: T; // (T) int32, 0 … T−1
  t?: T; // (B) int32: the diffusion timestep
  controls?: Controls<T>;
  /** Test-time LoRA adapters per virtual layer (ttt/adapters.ts): absent, the program is unchanged. */
  adapters?: Adapters<T>;
}

export interface LayerOut<T> {
  /** (B, H, Tq, Tk) attention weights after mask and normalisation. */
  attn: T;
  /** Residual stream after the layer (B, T, C) (parallel lanes: their mean). */
  hidden: T;
  /** Catalogued signals of this layer, shaped by scope with a leading batch axis. */
  signals: Record<string, T>;
  /** Further reference tensors under their fixture names (`headlens forward`). */
  extras?: Record<string, T>;
  /**
   * Fields that are the analysis's own view rather than a reference tensor, so `headlens forward`
   * does not write them as `hidden.{l}` / `attn.{l}` (paramgolf's two-lane layers: `hidden` is
   * the mean of the lanes, which the reference reports only as `lane0.{l}` and `lane1.{l}`).
   * Absent: both are written.
   */
  notForwarded?: readonly ('hidden' | 'attn')[];
}

/** A forward pass, one virtual layer at a time (so analysis can stream layer by layer). */
export interface Program<T> {
  readonly layers: number;
  step(layer: number): LayerOut<T>;
  /** The normalised hidden state that feeds the output head (B, T, C). */
  final(): T;
  /** Tensors the program keeps between steps (runtimes with scoped memory keep these alive). */
  state(): T[];
}

export interface HeadSpec {
  /** The weight: an nn.Linear (stored [C, V]) or, when tied, the embedding table (V, C). */
  weight: string;
  tied: boolean;
  bias?: string;
  /** logits → cap·tanh(logits / cap). */
  softcap?: number;
}

export interface FamilyDef {
  readonly families: readonly ModelConfig['family'][];
  /** Is this checkpoint (names and shapes) one of this family's? */
  recognise(raw: RawCheckpoint): boolean;
  /** Names, layouts and config of a recognised checkpoint; `given` is --config (the family's own field names). */
  fromCheckpoint(raw: RawCheckpoint, given: RawConfig): FamilyCheckpoint;
  /** A complete config from partial values (the family's own field names) and its defaults: a new model. */
  defaults(family: Family, partial: RawConfig): ModelConfig;
  /** Causal LM (next-token NLL) or a denoiser scored on its own tokens. */
  objective(c: ModelConfig): 'causal' | 'diffusion';
  parameters(c: ModelConfig): ParamSpec[];
  program<T>(o: Ops<T>, c: ModelConfig, inputs: ForwardInputs<T>): Program<T>;
  head(c: ModelConfig): HeadSpec;
  /** The final norm applied to any residual stream (B, T, C): what the logit lens reads each layer through. */
  lensNorm<T>(o: Ops<T>, c: ModelConfig, x: T): T;
  signals(c: ModelConfig): SignalSpec[];
  /** Virtual layers (the analysis's layers) and heads per layer. */
  layerCount(c: ModelConfig): number;
  kvHeads(c: ModelConfig): number;
  /** Per virtual layer: how far back a query sees (null: the whole window; 'bidirectional'). */
  attentionWindows(c: ModelConfig): (number | null | 'bidirectional')[];
  /** The family's own initialisation (seeded), PyTorch layout. */
  init(c: ModelConfig, seed: number): Map<string, HostTensor>;
  /** Whether the mechanism has an adaptive path that `adaptiveOff` switches off. */
  adaptive(c: ModelConfig): boolean;
  /** Whether that path reads later tokens of the window in a causal model (the causality audit). */
  futureLeak(c: ModelConfig): boolean;
}

/** Logits from the final hidden state: h @ W (+ b), optionally soft-capped. */
export function applyHead<T>(o: Ops<T>, spec: HeadSpec, h: T): T {
  const w = o.param(spec.weight);
  let logits = o.matmul(h, spec.tied ? o.transpose(w, [1, 0]) : w);
  if (spec.bias) logits = o.add(logits, o.param(spec.bias));
  if (spec.softcap) logits = o.mul(o.tanh(o.div(logits, spec.softcap)), spec.softcap);
  return logits;
}

/**
 * The interventions on one layer's per-head attention output y (B, H, T, d): scaled per head,
 * or mixed towards its mean over positions. Without controls, y unchanged.
 */
export function interveneHeads<T>(o: Ops<T>, y: T, controls: Controls<T> | undefined, layer: number): T {
  if (!controls) return y;
  const scale = o.reshape(o.slice(controls.headScale, 0, layer, layer + 1), [1, -1, 1, 1]); // (1, H, 1, 1)
  const mix = o.reshape(o.slice(controls.headMean, 0, layer, layer + 1), [1, -1, 1, 1]);
  const mean = o.mean(y, 2, true); // (B, H, 1, d)
  return o.mul(o.add(o.mul(y, o.sub(1, mix)), o.mul(mean, mix)), scale);
}

/** The `adaptiveOff` row of a layer as (1, H, 1, 1) (1 = off), or null without controls. */
export function adaptiveOffOf<T>(o: Ops<T>, controls: Controls<T> | undefined, layer: number): T | null {
  if (!controls) return null;
  return o.reshape(o.slice(controls.adaptiveOff, 0, layer, layer + 1), [1, -1, 1, 1]);
}
