/**
 * The contract between the analysis (and evaluation) and a runtime: run one window of token ids
 * through a model and hand back, on the host, the small arrays the views need — per layer the head
 * summaries, latent codes, signals and (when asked) the attention maps; per position the NLL and
 * top-k predictions, and the causality leak at audited positions. Implemented by onnxruntime
 * (runtime/onnx/runner.ts) and TensorFlow.js (runtime/tfjs/runner.ts) over the same family code.
 */
import type { DeviceInfo } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { CancelToken } from '../errors';

/** Interventions per (virtual layer, head), row-major (L·H) — see models/family.ts Controls. */
export interface HostControls {
  headScale: Float32Array;
  headMean: Float32Array;
  adaptiveOff: Float32Array;
}

export interface WindowRequest {
  ids: Int32Array;
  /** Target id per position (next token, or the token itself for a denoiser); −1 = none. */
  targets: Int32Array;
  /** Diffusion timestep. */
  t?: number;
  /** Top-k predictions per position (≤ MAX_TOP_K). */
  topK: number;
  /** Which layers' full attention maps to return. */
  attention: (layer: number) => boolean;
  /** Positions whose causality leak to measure (each costs a forward of its prefix). */
  audit: number[];
  controls?: HostControls;
  /** Return each layer's residual stream (logit lens). */
  residuals?: boolean;
}

export const MAX_TOP_K = 20;

/**
 * A batch of equal-length sequences to score (evaluation, compare, ablations): only the NLL of
 * each position comes back, none of the analysis's per-layer arrays or top-k.
 */
export interface NllRequest {
  /** (B, T) row-major. */
  ids: Int32Array;
  /** (B, T): target id per position, −1 = none (its NLL is NaN). */
  targets: Int32Array;
  B: number;
  T: number;
  /** Diffusion timestep (every row). */
  t?: number;
  controls?: HostControls;
}

/** Rows (B·T) one scoring call may hold: the head's (rows, V) logits are the peak memory. */
export function nllBatchRows(vocab: number): number {
  return Math.max(1, Math.floor((256 * 1024 * 1024) / 4 / Math.max(1, vocab)));
}

export interface HostArray {
  values: Float32Array | Int32Array;
  shape: number[];
}

export interface WindowLayer {
  layer: number;
  headMax: Float32Array; // (H, T)
  headArgmax: Int32Array; // (H, T), window-relative key
  headEntropy: Float32Array; // (H, T)
  headDistance: Float32Array; // (H, T)
  latentKey: Int32Array; // (T)
  latentCode: Float32Array; // (T, H)
  /** (H, T, T): float16 bits straight from the device, or float32. */
  attn?: { half: Uint16Array } | { float: Float32Array };
  /** Catalogued signals, batch axis removed (shape by scope). */
  signals: Record<string, HostArray>;
  /** (T, C) residual stream after the layer, when asked for. */
  residual?: Float32Array;
}

export interface WindowOutput {
  nll: Float32Array; // (T), NaN where no target
  topIds: Int32Array; // (T, K)
  topProbs: Float32Array; // (T, K)
  /** (T): NaN where not audited, 0 at the last position. */
  leak?: Float32Array;
}

/** The logit lens of residual rows: per row the top-k through the final norm and head, and the target's rank. */
export interface LensOutput {
  topIds: Int32Array; // (M, K)
  topProbs: Float32Array; // (M, K)
  /** −log p(target) */
  nll: Float32Array; // (M)
  rank: Int32Array; // (M), 1 = top guess
}

export interface InferenceRuntime {
  /** e.g. "onnx-cpu", "wasm". */
  readonly name: string;
  readonly device: DeviceInfo;
  /** Per layer, then the output side. Freed when the generator finishes or is returned early. */
  analyzeWindow(req: WindowRequest, token?: CancelToken): AsyncGenerator<WindowLayer, WindowOutput>;
  /** −log p(target) per position of a batch, (B·T); NaN where the target is −1. */
  nll(req: NllRequest, token?: CancelToken): Promise<Float32Array>;
  /** Residual rows (M, C) through the family's final norm and head (the logit lens). */
  lens(rows: Float32Array, M: number, targets: Int32Array, topK: number): Promise<LensOutput>;
  /** Everything `headlens forward` writes, under the fixture names, for ids (B, T). */
  forwardTensors(ids: Int32Array, B: number, T: number, t?: Int32Array): Promise<Map<string, HostTensor>>;
  dispose(): Promise<void>;
}
