/**
 * The contract between the model families and their users (analysis, training, CLI).
 * The model sees token ids only; tokenization lives in engine/tokenizer.ts.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../protocol';

/** One training/eval batch. Causal: targets = next ids. Diffusion: targets = clean ids, mask = where the loss counts. */
export interface Batch {
  inputIds: tf.Tensor2D; // (B, T) int32
  targets: tf.Tensor2D; // (B, T) int32
  mask?: tf.Tensor2D; // (B, T) float32, diffusion only
  t?: tf.Tensor1D; // (B) int32, diffusion only
  /** Per-position loss weights (B·T), summing to this micro-batch's share of the full batch. */
  weights?: tf.Tensor1D;
}

/** What a block reports when the analysis asks for internals (all (B, …) tensors, caller disposes). */
export interface LayerInternals {
  layer: number;
  attn: tf.Tensor4D; // (B, H, T, T) attention probabilities
  hidden: tf.Tensor3D; // (B, T, C) residual stream after the block
  loraA?: tf.Tensor4D; // (B, H, D, r)
  loraB?: tf.Tensor4D; // (B, H, r, D)
  loraFro?: tf.Tensor2D; // (B, H)   (alpha/r)·‖A B‖_F
  loraTok?: tf.Tensor3D; // (B, H, T) (alpha/r)·‖v_t A B‖₂
  vNorm?: tf.Tensor3D; // (B, H, T) ‖v_t‖₂ (value before the update)
}

export interface ModelApi {
  readonly config: ModelConfig;
  /** Trainable parameters, keyed by PyTorch names. nn.Linear weights are held transposed ([in, out]). */
  readonly params: Map<string, tf.Variable>;
  /** Names in PyTorch `model.parameters()` order (what AdamW state indices refer to). */
  parameterNames(): string[];
  /** Mean cross-entropy (diffusion: over mask = 1), never materialising full (B·T, V) logits at once. */
  loss(batch: Batch): tf.Scalar;
  /** Full logits (B, T, V). For tests / `headlens forward`; analysis uses `finalHidden` + chunked heads. */
  logits(ids: tf.Tensor2D, t?: tf.Tensor1D): tf.Tensor3D;
  dispose(): void;
}
