/**
 * The one place where every message that crosses a process boundary is written down:
 * engine ⇄ extension (JSON lines on the engine's stdio) and extension ⇄ webview (postMessage).
 * The engine, the extension and the webviews all import these types; nothing is re-declared by hand.
 *
 * Wire format (JSON-RPC-like, one JSON object per line, stdout carries protocol only):
 *   request   {v, id, method, params}
 *   response  {v, id, result} | {v, id, error: {code, message, data?}}
 *   progress  {v, method: "$/progress", params: {id, value}}   (partial results of request `id`)
 *   notify    {v, method, params}                               (no id: `$/cancel`, `$/log`)
 */

export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Numeric arrays on the wire
// ---------------------------------------------------------------------------------------------

/** A dense array, little-endian, base64. f16 halves attention maps; i32 carries indices. */
export interface EncodedArray {
  dtype: 'f32' | 'f16' | 'u8' | 'i32';
  shape: number[];
  data: string;
}

// ---------------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------------

export interface RequestMessage<M extends string = string, P = unknown> {
  v: number;
  id: number;
  method: M;
  params: P;
}
export interface ResponseOk<R = unknown> {
  v: number;
  id: number;
  result: R;
}
export interface ResponseError {
  v: number;
  id: number | null;
  error: ErrorObject;
}
export interface ErrorObject {
  code: ErrorCode;
  message: string;
  data?: unknown;
}
export interface NotificationMessage<M extends string = string, P = unknown> {
  v: number;
  method: M;
  params: P;
}
export type AnyMessage = RequestMessage | ResponseOk | ResponseError | NotificationMessage;

/** Documented error codes (JSON-RPC numbers where they exist). */
export enum ErrorCode {
  ParseError = -32700,
  InvalidRequest = -32600,
  MethodNotFound = -32601,
  InvalidParams = -32602,
  InternalError = -32603,
  /** The request was cancelled by `$/cancel` or because the engine went away. */
  Cancelled = -32800,
  /** No model loaded yet (call `model/load`). */
  NoModel = -32001,
  /** Bad user input: a missing/garbage file, ids ≥ vocab, a refused pickle global... */
  BadInput = -32002,
  /** The compute device failed (lost device, validation error); the engine fell back. */
  DeviceError = -32003,
  /** A training run is already active, or none is. */
  TrainingState = -32004,
}

// ---------------------------------------------------------------------------------------------
// Shared value types
// ---------------------------------------------------------------------------------------------

export type Family = 'base' | 'matched' | 'adaptive' | 'diffusion' | 'adaptive_diffusion' | 'gpt2' | 'autoresearch' | 'paramgolf' | 'tlora';
export const FAMILIES: readonly Family[] = ['base', 'matched', 'adaptive', 'diffusion', 'adaptive_diffusion', 'gpt2', 'autoresearch', 'paramgolf', 'tlora'];
/** The a-gpt families (REDDITARUN/a-gpt models/*.py). */
export const AGPT_FAMILIES: readonly Family[] = ['base', 'matched', 'adaptive', 'diffusion', 'adaptive_diffusion'];
/** onnx-*: onnxruntime's execution providers (inference); the rest are TensorFlow.js backends. */
export type BackendName = 'onnx-cuda' | 'onnx-webgpu' | 'onnx-cpu' | 'tensorflow-gpu' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type TfjsBackendName = 'tensorflow-gpu' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type BackendChoice = 'auto' | BackendName;

export interface HyperConfig {
  rank: number;
  n_heads: number;
  n_layers: number;
  alpha: number;
}
/**
 * One config schema for every family and knob. The common keys are a-gpt's / nanoGPT's
 * (`block_size` is autoresearch's `sequence_len` and HF's `n_positions`); the rest belong to a
 * family or a knob and are absent elsewhere. Loaders accept each source's own field names.
 */
export interface ModelConfig {
  family: Family;
  vocab_size: number;
  block_size: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
  /** diffusion families: number of timesteps T_d (time embedding has T_d + 1 rows). */
  num_diffusion_steps?: number;
  /** diffusion families: the mask token id (default vocab_size − 1). */
  mask_token_id?: number;
  hyper?: HyperConfig;
  /** gpt2: Linear and LayerNorm biases (nanoGPT `bias`). */
  bias?: boolean;
  /** gpt2: 'gelu_new' (tanh form, HF) or 'gelu' (exact erf, nanoGPT's nn.GELU()). */
  activation?: 'gelu_new' | 'gelu';
  layer_norm_epsilon?: number;
  /** gpt2: divide attention scores by √head_dim (HF `scale_attn_weights`; default true). */
  scale_attn_weights?: boolean;
  /** gpt2: also divide layer l's attention scores by l + 1 (HF `scale_attn_by_inverse_layer_idx`; default false). */
  scale_attn_by_inverse_layer_idx?: boolean;
  /** gpt2: false when the output head is its own `lm_head.weight` rather than the token embedding (default true). */
  tie_word_embeddings?: boolean;
  /** Key/value heads (GQA/MQA); default n_head. */
  n_kv_head?: number;
  /**
   * autoresearch: the training context its windows derive from (L = sequence_len, S = sequence_len // 2).
   * block_size, the longest sequence run, defaults to it; it may be longer (their rotary table is 10×).
   */
  sequence_len?: number;
  /** autoresearch: per-layer window pattern of S (half context) / L (full), cycled; last layer L. */
  window_pattern?: string;
  /** autoresearch: value embeddings on alternating layers (theirs), every layer, or none. */
  value_embeds?: 'alternate' | 'all' | 'none';
  /** autoresearch: the value-embedding gate 2·σ(W·x[:32]) ('learned') or fixed at 1 ('fixed'). */
  ve_gate?: 'learned' | 'fixed';
  /** Logit soft cap cap·tanh(z/cap); null or 0 = none. */
  softcap?: number | null;
  /** Knob: GatedAttn per-head sigmoid gate on the attention output (parameter-golf #1736/#1784). */
  gate?: boolean;
  /** Knob (HYLA): softmax over keys, or RMS over heads. */
  attention?: 'softmax' | 'rms_head';
  /** Knob (HYLA): the value network generated by the latent code: linear, or with a ReLU. */
  value_net?: 'linear' | 'relu';
  /** paramgolf: its `Hyperparameters` fields (num_loops, loop_start, rope_dims, …). */
  paramgolf?: ParamgolfConfig;
  /** tlora: Temporal LoRA's adapters and Time Mixer router on the GPT-2 base the other keys describe. */
  tlora?: TloraConfig;
}

/**
 * Temporal LoRA (stability-first-ai `temporal_lora.py`): one LoRA adapter per domain on the residual
 * stream before every block, mixed per token by the Time Mixer (token embedding → MLP → softmax).
 */
export interface TloraConfig {
  /** Adapter names in router order: adapter k is the router's k-th output (their `adapter_names`). */
  adapter_names: string[];
  /** LoRA rank r (lora_A is [r, C]) and alpha: Δ = (alpha / r)·(x Aᵀ) Bᵀ (theirs: 8 and 16). */
  rank: number;
  alpha: number;
  /** Time Mixer: token-embedding width (64) and classifier hidden width (32). */
  mixer_embed: number;
  mixer_hidden: number;
  /** Hidden width of the hidden-state `gate` MLP (n_embd / 2): never used by the forward, kept so checkpoints round-trip; 0 = absent. */
  gate_hidden: number;
  /** The GPT-2 base (a path) when the weights file holds only the adapters and the router. */
  base?: string;
  /** How the adapters are mixed (default: the router). */
  route?: TloraRoute;
}

/**
 * Temporal LoRA mixing: `mixer` = the Time Mixer's weights (theirs with use_mixer=True); `uniform` =
 * each Δ/K (use_mixer=False, no weights); `adapter` = one adapter alone at weight 1; `weights` = fixed
 * weights by name (their manual adapter_weights); `none` = no adapter (their forward, ln_f still skipped).
 */
export type TloraRoute =
  | { kind: 'mixer' }
  | { kind: 'uniform' }
  | { kind: 'none' }
  | { kind: 'adapter'; name: string }
  | { kind: 'weights'; weights: Record<string, number> };

/**
 * parameter-golf's `Hyperparameters` (their field names) that the common keys do not carry:
 * n_layer = num_layers (physical blocks), n_embd = model_dim, n_head = num_heads,
 * vocab_size, block_size = train_seq_len.
 */
export interface ParamgolfConfig {
  num_kv_heads: number;
  /** MLP hidden width = int(mlp_mult · model_dim). */
  mlp_mult: number;
  rope_base: number;
  /** Leading head dims that rotate (0 = all of them). */
  rope_dims: number;
  /** Norm outputs × 1/√(physical block + 1). */
  ln_scale: boolean;
  /** Depth recurrence: blocks loop_start..loop_end run num_loops extra times (0 = none). */
  num_loops: number;
  loop_start: number;
  loop_end: number;
  /** Decoder blocks with this physical index or more run as two-lane parallel blocks (0 = none). */
  parallel_start_layer: number;
  /** What feeds the final norm after parallel blocks: the lanes' mean, lane0 ('attn') or lane1 ('mlp'). */
  parallel_final_lane: 'mean' | 'attn' | 'mlp';
  /** The last xsa_last_n physical blocks remove each head output's component along its own value. */
  xsa_last_n: number;
  skip_gates_enabled: boolean;
  tie_embeddings: boolean;
  logit_softcap: number;
  /** GatedAttn (their GATED_ATTN_ENABLED): per-head sigmoid gate on the attention output. */
  gated_attn: boolean;
  /** Initialisation only: q_gain's start value and the init stds of attn_gate_w and a tied tok_emb. */
  qk_gain_init: number;
  gated_attn_init_std: number;
  tied_embed_init_std: number;
}

/** Where a signal lives: its array shape per window is given by the scope (T = window tokens). */
export type SignalScope = 'head×token' | 'kvhead×token' | 'head' | 'token' | 'chunk' | 'adapter×token' | 'layer×token';

/** One entry of a model's signal catalogue (DESIGN.md "Adaptive signals"). */
export interface SignalSpec {
  name: string;
  scope: SignalScope;
  label: string;
  unit?: string;
  /** A hint for colour scales: [low, high]; absent = from the data. */
  range?: [number, number];
  /** Diverging around 0 (e.g. a difference of losses). */
  diverging?: boolean;
  description: string;
  /** The family or mechanism that reports it. */
  mechanism: string;
  /** Reported per layer (in layer events) or once per window (output events). */
  perLayer: boolean;
  /**
   * Labels of a channelled scope's rows (`adapter×token`: the adapter names, in row order). The views
   * name each row by its label, and colour a token by its largest channel (categorical).
   */
  channels?: string[];
}

export interface BackendInfo {
  name: BackendName;
  /** Why this backend was chosen ("requested", "first that loaded"). */
  reason: string;
  /** The ones tried before it, with why each was skipped. */
  skipped: { name: BackendName | 'onnx'; reason: string }[];
  threads?: number;
  simd?: boolean;
  /** TensorFlow.js version of the backend package. */
  version?: string;
}
export interface DeviceInfo {
  kind: 'gpu' | 'cpu';
  name: string;
  vendor?: string;
}

export interface ModelInfo {
  path: string;
  family: Family;
  config: ModelConfig;
  paramCount: number;
  /** Where each config value came from (checkpoint shapes, sidecar config, a-gpt default). */
  configSources: Record<string, 'shapes' | 'config' | 'checkpoint' | 'sidecar' | 'default'>;
  /** The tokenizer the model uses: its kind and where it came from. */
  tokenizer: TokenizerInfo;
  /** True when the model is causal (next-token NLL exists). */
  causal: boolean;
  adaptive: boolean;
  /** The adaptive path reads later tokens of the window (a-gpt's pooled hypernetwork): the causality audit applies. */
  futureLeak: boolean;
  /** Layers the analysis reports (virtual layers where blocks are reused) and heads per layer. */
  layers: number;
  heads: number;
  kvHeads: number;
  /** The kv head each query head reads (GQA). */
  kvHeadOf: number[];
  /** Per layer: the attention window (keys back from the query), null = whole window, or bidirectional. */
  attentionWindows: (number | null | 'bidirectional')[];
  /** Every signal the model's mechanisms report. */
  signals: SignalSpec[];
  /** Free text for the user (e.g. "random-init weights: untrained"). */
  note?: string;
}

export interface TokenizerInfo {
  kind: 'gpt2' | 'hf-bpe' | 'tiktoken' | 'sentencepiece';
  /** The file it was read from, or "GPT-2 BPE (built in)". */
  source: string;
  vocabSize: number;
}

export interface TokenInfo {
  /** Index in the analysed token sequence. */
  index: number;
  id: number;
  /** Decoded text of the token (may be a partial character: shown as-is). */
  text: string;
  /** [start, end) in UTF-16 code units of the analysed document string. */
  start: number;
  end: number;
}

// ---------------------------------------------------------------------------------------------
// Analysis
// ---------------------------------------------------------------------------------------------

export interface AnalyzeParams {
  text: string;
  /** Analyse only [start, end) of `text` (UTF-16 offsets), e.g. the selection or the visible range. */
  range?: { start: number; end: number };
  /** Offset added to every token offset in the results (when `text` is a slice of a document). */
  baseOffset?: number;
  /** Window length in tokens (≤ block_size; default block_size). */
  window?: number;
  /** Sliding-window stride in tokens (default window / 2; = window: disjoint windows). */
  stride?: number;
  /** The logit lens: every layer's residual read through the final norm and head (costs a head per layer). */
  logitLens?: boolean;
  /** Which layers' full attention maps to send (default all). Summaries are always sent. */
  attentionLayers?: number[];
  /** Send attention maps at all (default true). */
  includeAttention?: boolean;
  /** Compute the causality audit (adaptive causal models; default true). */
  causalityAudit?: boolean;
  /** Number of next-token predictions per token (default 5). */
  topK?: number;
  /** Diffusion families: timestep to analyse at (default 0 = clean input). */
  t?: number;
}

/** Per window, sent first: the tokens it covers. */
export interface AnalyzeTokensEvent {
  kind: 'tokens';
  window: number;
  windowCount: number;
  /** Index of the window's first token in the whole token sequence. */
  tokenStart: number;
  tokens: TokenInfo[];
  /**
   * Positions [ownFrom, ownTo) (indices in the whole sequence) this window scores and reports: with
   * overlapping windows each position is read from the one window that scores it (analysis/windows.ts).
   */
  ownFrom?: number;
  ownTo?: number;
}

/** Per window and layer, as soon as that layer is computed. H heads, T tokens in the window. */
export interface AnalyzeLayerEvent {
  kind: 'layer';
  window: number;
  layer: number;
  tokenStart: number;
  /** (H, T, T) attention probabilities, f16; absent when not requested. */
  attn?: EncodedArray;
  /** (H, T) max attention probability of each query. */
  headMax: EncodedArray;
  /** (H, T) argmax key index (window-relative), i32. */
  headArgmax: EncodedArray;
  /** (H, T) entropy of each query's attention distribution, nats. */
  headEntropy: EncodedArray;
  /** (H, T) mean attended distance Σ_k p·|t − k|. */
  headDistance: EncodedArray;
  /** (T) k* = argmax_k mean_h attn[h][t][k], window-relative, i32. */
  latentKey: EncodedArray;
  /** (T, H) latent code z[t][k*] = (attn[1][t][k*], …, attn[H][t][k*]). */
  latentCode: EncodedArray;
  /** The layer's catalogued signals (ModelInfo.signals), shaped by scope: head×token (H, T), head (H), kvhead×token (Hkv, T), … */
  signals?: Record<string, EncodedArray>;
}

/** Per window, after the last layer: output-side quantities. */
export interface AnalyzeOutputEvent {
  kind: 'output';
  window: number;
  tokenStart: number;
  /** (T) NLL of the next token (causal) or of the token itself (diffusion); NaN where undefined. */
  nll: EncodedArray;
  /** (T, K) top-k predicted ids, i32, and their probabilities, f32. */
  topIds: EncodedArray;
  topProbs: EncodedArray;
  /** (T) causality leak max|logits_t(full) − logits_t(prefix)|; absent when not audited. */
  leak?: EncodedArray;
  /** Decoded text of the predicted ids not sent in an earlier window (hovers draw before the end). */
  vocabText?: Record<number, string>;
  /** The logit lens (when asked): per layer and position the top-k, and the rank and probability of the actual next token. */
  lens?: { topIds: EncodedArray; topProbs: EncodedArray; rank: EncodedArray; prob: EncodedArray };
}

export type AnalyzeEvent = AnalyzeTokensEvent | AnalyzeLayerEvent | AnalyzeOutputEvent;

export interface AnalyzeResult {
  tokenCount: number;
  windowCount: number;
  layers: number;
  heads: number;
  /** Mean NLL over tokens that have one. */
  meanNll: number | null;
  /** Max causality leak over all tokens, when audited. */
  maxLeak: number | null;
  elapsedMs: number;
  backend: BackendName;
  /** Top-k decoded strings for every distinct predicted id (id → text), to render hovers. */
  vocabText: Record<number, string>;
  /**
   * Head roles on the analysed text (TransformerLens's head detector, "mul" score, averaged over
   * windows): role → (L·H) row-major; absent when attention maps were not computed for every layer.
   */
  headRoles?: Record<'previous' | 'duplicate' | 'induction', number[]>;
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

export interface TrainParams {
  /** Files, folders or globs of text. */
  data: string[];
  family?: Family;
  init?: string;
  config?: Partial<ModelConfig>;
  steps: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  batchSize?: number;
  seqLen?: number;
  gradAccum?: number;
  weightDecay?: number;
  betas?: [number, number];
  clip?: number;
  evalInterval?: number;
  seed?: number;
  out?: string;
  resume?: string;
  /** Every N steps compute per-head probe metrics (default 10). */
  probeInterval?: number;
  /** Validation batches per source and evaluation (default 5). */
  evalIters?: number;
  /** Save `last` every N steps (default 50); a stop always saves. */
  checkpointInterval?: number;
  /** Train on the one fixed batch of this safetensors file instead of `data`. */
  overfitBatch?: string;
}

export interface TrainStepRecord {
  kind: 'step';
  runId: string;
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  elapsed_s: number;
}
export interface TrainEvalRecord {
  kind: 'eval';
  runId: string;
  step: number;
  val_loss: number;
  train_loss?: number;
  /** With several data sources: each source's validation loss (val_loss is their weighted mean). */
  val_by_source?: Record<string, number>;
}
/** Per layer and head on a fixed probe batch: how the adaptive path grows. (L, H) row-major. */
export interface TrainProbeRecord {
  kind: 'probe';
  runId: string;
  step: number;
  layers: number;
  heads: number;
  loraFro: number[] | null;
  loraRel: number[] | null;
  attnEntropy: number[];
  /** Every per-head signal of the family, (L, H) row-major (means over the probe's tokens). */
  signals?: Record<string, number[]>;
}
export interface TrainStatusRecord {
  kind: 'status';
  runId: string;
  state: 'starting' | 'running' | 'paused' | 'stopping' | 'stopped' | 'finished' | 'failed';
  message?: string;
  checkpoint?: string;
  step?: number;
  totalSteps?: number;
  family?: Family;
}
export type TrainEvent = TrainStepRecord | TrainEvalRecord | TrainProbeRecord | TrainStatusRecord;

export interface TrainResult {
  runId: string;
  steps: number;
  finalLoss: number | null;
  bestValLoss: number | null;
  checkpoint: string | null;
  stoppedEarly: boolean;
}

// ---------------------------------------------------------------------------------------------
// Evaluation, compare, interventions (engine/eval, engine/analysis/interventions.ts)
// ---------------------------------------------------------------------------------------------

export interface PplTotals {
  /** Scored tokens (every token after the first of each document). */
  tokens: number;
  nll_sum: number;
  nll_mean: number | null;
  ppl: number | null;
  /** UTF-8 bytes of the scored tokens. */
  bytes: number;
  /** nll_sum / (ln 2 · bytes) */
  bpb: number | null;
}
export interface PplResult extends PplTotals {
  context: number;
  stride: number;
  documents: number;
  by_source?: Record<string, PplTotals & { documents: number }>;
}

export interface McItemResult {
  index: number;
  label: number;
  sum: number[];
  per_token: number[];
  per_byte: number[];
  /** Per ending, the log-prob of each of its tokens. */
  logprobs: number[][];
  /** Per ending, the text of each of its tokens. */
  tokens: string[][];
  /** Context tokens dropped from the left to fit the model. */
  truncated: number;
}
export interface McResult {
  items: McItemResult[];
  acc_sum: number;
  acc_per_token: number;
  acc_per_byte: number;
  truncated_items: number;
  context: number;
}

/** A mean with its bootstrap 95 % interval. */
export interface Interval {
  mean: number;
  lo: number;
  hi: number;
  n: number;
}
export type TokenClass = 'identifier' | 'keyword' | 'number' | 'punctuation' | 'whitespace' | 'string/comment';
export interface CompareToken extends TokenInfo {
  class: TokenClass;
  /** The token's id occurred earlier in the context it was scored with. */
  repeated: boolean;
  context: number;
  nll_a: number | null;
  nll_b: number | null;
  /** nll_a − nll_b: negative where A is better. */
  dnll: number | null;
}
export interface CompareResult {
  model_a: string;
  model_b: string;
  context: number;
  stride: number;
  tokens: CompareToken[];
  summary: { overall: Interval; by_class: Record<string, Interval>; repeated: Interval; first: Interval; mean_nll_a: number; mean_nll_b: number };
  /** With `heads: true`: what each model's heads did on the same tokens (the hover's codes, the overview side by side). */
  heads?: { a: CompareHeads; b: CompareHeads };
}
/** One model's heads on the compared tokens, from its analysis with the compare's windows. */
export interface CompareHeads {
  layers: number;
  heads: number;
  /** The model's per-head signal specs (head×token scope) whose means are in `means`. */
  signals: SignalSpec[];
  /** Per head (L·H, layer-major): the mean over the tokens of attnMax, entropy and each head×token signal. */
  means: Record<string, number[]>;
  /** (L, H, N) attention max and entropy (nats) of every head at every token. */
  attnMax: EncodedArray;
  entropy: EncodedArray;
  /** (N, K) the model's top next-token predictions at every position, and their texts. */
  topIds: EncodedArray;
  topProbs: EncodedArray;
  vocabText: Record<number, string>;
}

export type AblationMode = 'zero' | 'mean' | 'adaptive-off';
export interface Ablation {
  layer: number;
  head: number;
  mode: AblationMode;
}
/** One cell of an ablation sweep: mean ΔNLL (ablated − intact) over the scored tokens. */
export interface SweepCellEvent extends Interval {
  layer: number;
  /** −1 when the whole layer was ablated. */
  head: number;
  /** (N) per-token ΔNLL, f32 (NaN where not scored): the dNll signal of this ablation. */
  dnll: EncodedArray;
}
export interface SweepResult {
  mode: AblationMode;
  unit: 'head' | 'layer';
  cells: Omit<SweepCellEvent, 'dnll'>[];
  tokens: TokenInfo[];
}

/** A checkpoint of a run, ordered by its step (from the file name, its metadata or its mtime). */
export interface CheckpointEntry {
  path: string;
  step: number | null;
  mtimeMs: number;
}
/** One checkpoint of a timeline, analysed on the text. */
export interface TimelineEvent {
  index: number;
  path: string;
  step: number | null;
  /** (N) NLL of each token's prediction (position t predicts token t + 1). */
  nll: EncodedArray;
  meanNll: number | null;
  /** Every per-head signal of the family, per layer and head averaged over the tokens: name → (L·H). */
  headSignals: Record<string, number[]>;
  /** Attention entropy per layer and head, averaged over the tokens (L·H). */
  entropy: number[];
}

// ---------------------------------------------------------------------------------------------
// Watched training runs and experiment grids (engine/server/runs.ts, engine/monitor, engine/grid)
// ---------------------------------------------------------------------------------------------

export type RunFileFormat = 'tfevents' | 'jsonl' | 'csv' | 'log';
/** Stdout-log presets of engine/monitor/logs.ts. */
export type RunLogPreset = 'nanogpt' | 'autoresearch' | 'agpt' | 'paramgolf';

export interface RunWatchParams {
  /** A training log, metrics file or event file, or a folder (a TensorBoard logdir, a run's output folder). */
  path: string;
  /** How to read stdout logs (default: detected from the first lines). */
  preset?: RunLogPreset;
  /** A JavaScript regular expression with a named group `(?<step>…)`; every other named group that reads as a number is a series. */
  regex?: string;
  regexFlags?: string;
  /** How often the files are polled besides file-system events (ms, default 1000). */
  pollMs?: number;
}
/** New points of one series, in order; a non-finite value (a diverged loss) travels as null. */
export interface RunSeriesPoints {
  steps: number[];
  values: (number | null)[];
}
/** A checkpoint beside a watched run that the engine can load (checked by its readers before it is announced). */
export interface RunCheckpoint {
  path: string;
  /** From its name (`model_000500.pt`), our checkpoints' metadata, or the torch dict's step; null when unknown. */
  step: number | null;
  mtimeMs: number;
  size: number;
  family: Family;
  layers: number;
  heads: number;
  paramCount: number;
}
/**
 * What `runs/watch` streams: files found, new points per series (a `segment` starts where a run
 * restarted into the same file or the file was rotated), loadable checkpoints, warnings. `caught-up`
 * follows the first read of everything already written.
 */
export type RunWatchEvent =
  | { kind: 'file'; file: string; path: string; format: RunFileFormat }
  | { kind: 'points'; file: string; segment: number; series: Record<string, RunSeriesPoints> }
  | { kind: 'segment'; file: string; segment: number; reason: 'step-back' | 'truncated' | 'replaced' | 'rewritten'; step?: number }
  | { kind: 'checkpoint'; checkpoint: RunCheckpoint }
  | { kind: 'warning'; file: string; message: string }
  | { kind: 'removed'; file: string }
  | { kind: 'caught-up'; files: number; points: number };
export interface RunWatchResult {
  files: number;
  points: number;
}

export interface RunProbeParams {
  checkpoint: string;
  /** The fixed probe text (the same for every checkpoint of a run, so the curves compare). */
  text: string;
  config?: string | Record<string, unknown>;
  /** Tokens of the text analysed (default 256: one window of a small model). */
  maxTokens?: number;
}
/** A checkpoint's per-head signals on the probe text, each averaged over the tokens. */
export interface RunProbeResult {
  checkpoint: string;
  step: number | null;
  family: Family;
  layers: number;
  heads: number;
  tokens: number;
  meanNll: number | null;
  /** Attention entropy per layer and head (L·H, nats). */
  entropy: number[];
  /** Every per-head signal of the family (ModelInfo.signals, head and head×token scopes; kv-head signals per query head): name → (L·H). */
  signals: Record<string, number[]>;
}

export interface GridRunParams {
  /** The grid's JSON spec (engine/grid/spec.ts); paths in it are relative to its folder. */
  spec: string;
  /** Output folder (default: the spec's `out`, else `<spec>.grid` beside it). */
  out?: string;
}
export type GridRowStatus = 'pending' | 'waiting' | 'running' | 'done' | 'failed' | 'skipped';
/** One variant of the grid (the baseline is the row with id `baseline`, wave 0). */
export interface GridRow {
  id: string;
  change: string;
  wave: number;
  priority: 'normal' | 'low';
  /** The variant its config starts from (the baseline, or an earlier wave's winner). */
  from: string | null;
  /** The config changes it makes over `from` (expressions evaluated). */
  changes: Record<string, unknown>;
  status: GridRowStatus;
  /** Seeds finished / planned. */
  seedsDone: number;
  seeds: number;
  /** Mean over the seeds; null until one finished. */
  valLoss: number | null;
  /** Seed-to-seed standard deviation of the val loss (null with one seed). */
  valLossStd: number | null;
  bpb: number | null;
  tokPerS: number | null;
  params: number | null;
  wallS: number | null;
  /** valLoss − the baseline's, and the spread of that difference (√(std² + std_baseline²)) with several seeds. */
  delta: number | null;
  deltaStd: number | null;
  /** The wave's winner (lowest val loss, or chosen in the spec). */
  winner: boolean;
  /** Checkpoints of its runs (last.safetensors), one per seed. */
  checkpoints: string[];
  /** Run folders (metrics.jsonl, last/best.safetensors). */
  dirs: string[];
  /** Why it is waiting or skipped, which run it shares, what failed. */
  note?: string;
}
/** The choice a wave made: the winner and why. */
export interface GridWaveChoice {
  wave: number;
  /** The variant the wave starts from. */
  from: string;
  /** The winner, or null while the wave is unfinished or none beat `from`. */
  winner: string | null;
  reason: string;
}
export interface GridTable {
  name: string;
  spec: string;
  out: string;
  stateFile: string;
  /** The table exported beside the spec (written after every run). */
  exports: { json: string; csv: string };
  rows: GridRow[];
  waves: GridWaveChoice[];
  /** Lines worth reading beside the table (data changed between runs, skipped low-priority variants). */
  notes: string[];
  done: boolean;
}
export type GridEvent =
  | { kind: 'table'; table: GridTable }
  | { kind: 'run'; variant: string; seed: number; dir: string; state: 'started' | 'reused' | 'finished' | 'failed'; index: number; total: number; message?: string }
  | { kind: 'train'; variant: string; seed: number; event: TrainEvent };

// ---------------------------------------------------------------------------------------------
// The request map: method → [params, result, progress value]
// ---------------------------------------------------------------------------------------------

export interface InitializeParams {
  clientName: string;
  protocolVersion: number;
  backend?: BackendChoice;
  /** Extra folders where optional GPU packages were installed on demand. */
  modulePaths?: string[];
  /** onnxruntime intra-op threads (0 = the physical cores). */
  threads?: number;
}
export interface InitializeResult {
  protocolVersion: number;
  engineVersion: string;
  backend: BackendInfo;
  device: DeviceInfo;
  models: ModelInfo[];
}
export interface ModelLoadParams {
  path: string;
  /** Path to a JSON config, or the config object itself. */
  config?: string | Partial<ModelConfig>;
}

export interface TextInput {
  text: string;
}
export interface EvalPplParams {
  /** Documents to score (each on its own); or files, folders or globs read by the engine. */
  texts?: { name: string; text: string }[];
  data?: string[];
  context?: number;
  stride?: number;
}
export interface ModelRef {
  path: string;
  config?: string | Record<string, unknown>;
}

/** One way of mixing the adapters, scored on the same tokens. */
export interface TloraLossRow {
  /** 'mixture', 'uniform', 'adapter:<name>', 'no adapter' (their forward, ln_f skipped) or 'base' (GPT-2 alone, with ln_f). */
  name: string;
  route: TloraRoute | 'base';
  nll_mean: number | null;
  ppl: number | null;
  tokens: number;
}
export interface TloraLossesResult {
  adapters: string[];
  rows: TloraLossRow[];
  /** Per token: the dominant adapter (argmax of the router, −1 for none), its router weights (N, K) and the NLL per row (rows × N, NaN where unscored). */
  tokens: TokenInfo[];
  dominant: number[];
  weights: EncodedArray;
  nll: EncodedArray;
  context: number;
  stride: number;
}
export interface TloraTrainParams {
  /** The GPT-2 base (frozen) the adapters are trained on. */
  base: string;
  /** One adapter per domain: its name and its files, folders or globs of text. */
  adapters: { name: string; data: string[] }[];
  /** Optimizer steps per adapter phase and for the router phase. */
  steps: number;
  routerSteps?: number;
  lr?: number;
  routerLr?: number;
  batchSize?: number;
  routerBatchSize?: number;
  seqLen?: number;
  routerSeqLen?: number;
  rank?: number;
  alpha?: number;
  seed?: number;
  evalInterval?: number;
  /** Output folder: the authors' temporal_lora_checkpoint.pt format and a safetensors twin. */
  out?: string;
}

/** PonderTTT on the loaded model as its frozen base (engine/ponder): the document in chunks, each UPDATE or SKIP. */
export interface PonderRunParams {
  text: string;
  /** The TTT layer: a .safetensors of `fast_norm.*` / `fast_layer.*` tensors (their NNX names). */
  ttt: string;
  /** TTTConfig keys the file does not carry (eta_decay_rate, ttt_base_lr, …): a JSON file or the object. */
  tttConfig?: string | Record<string, unknown>;
  /** Tokens per chunk, a multiple of the layer's mini-batch size (default 16, or the chunk it was trained with). */
  chunk?: number;
  /** ρ, the share of chunks the gate aims to update (default 0.5 = their budget 2.0). */
  targetRate?: number;
}
/** One chunk: sent as progress when it is done, and in the result. */
export interface PonderChunkInfo {
  index: number;
  /** Token indices [start, end). */
  start: number;
  end: number;
  decision: 'UPDATE' | 'SKIP';
  /** The first calibration chunks are UPDATE while τ is calibrated. */
  phase: 'calibration' | 'adaptive';
  /** The gate signal: mean over mini-batches of ttt_loss_step_0. */
  signal: number;
  /** τ the signal was compared with (null while calibrating); τ and the update-rate EMA after the chunk. */
  tau: number | null;
  tauAfter: number | null;
  emaRate: number | null;
  /** Mean over mini-batches of ttt_loss_step_1. */
  finalLoss: number;
  /** Mean next-token NLL of the chunk with the TTT branch (UPDATE) and without it (SKIP). */
  lossUpdate: number;
  lossSkip: number;
}
export interface PonderRunResult {
  tokens: TokenInfo[];
  chunk: number;
  miniBatch: number;
  targetRate: number;
  chunks: PonderChunkInfo[];
  /** (N) per position t, the NLL of token t + 1 (NaN where not scored): gated, always-update, never-update. */
  nll: { gated: EncodedArray; always: EncodedArray; never: EncodedArray };
  /** Unweighted means over chunks (their reported loss) and e^loss. */
  loss: { gated: number; always: number; never: number };
  ppl: { gated: number; always: number; never: number };
  updateRate: number;
  /** Tokens at the end that fill no mini-batch and are not scored. */
  unscored: number;
  /** Per token (N): tttUpdate (its chunk's decision, 1/0) and tttSignal (its chunk's signal), NaN outside chunks. */
  signals: { tttUpdate: EncodedArray; tttSignal: EncodedArray };
  backend: string;
  note?: string;
}
/**
 * LoRA test-time training on the loaded causal model (engine/ttt, parameter-golf #1784's eval): the
 * document in chunks, each scored with the adapters trained on the earlier chunks, then one AdamW
 * step on it. Every field defaults to the record's value.
 */
export interface TttRunParams {
  text: string;
  /** Predictions per chunk (48). */
  chunk?: number;
  /** Longest window a chunk is read in (2048, at most the model's context). */
  evalLen?: number;
  rank?: number;
  alpha?: number;
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Adapted modules (all: q, k, v, o, mlp, head). */
  modules?: ('q' | 'k' | 'v' | 'o' | 'mlp' | 'head')[];
  /** Start from the A the model's last run ended with (the record's warm start; default true); B always starts at 0. */
  warmStart?: boolean;
}
/** ‖ΔW‖_F of the adapters after a chunk's update: per module one value per layer, and the head's (the tttDelta signal). */
export interface TttDelta {
  layers: Partial<Record<'q' | 'k' | 'v' | 'o' | 'mlp', number[]>>;
  head: number | null;
}
/** One chunk, sent as progress when it is done and kept in the result (the explorer's chunk timeline). */
export interface TttChunkEvent {
  chunk: number;
  chunks: number;
  /** Positions [start, end) scored (position t predicts token t + 1), read in a window from windowStart. */
  start: number;
  end: number;
  windowStart: number;
  /** Every chunk but the last is trained after it is scored. */
  trained: boolean;
  /** Mean NLL of the chunk before its update (the score), after it (diagnostic), and by the base model. */
  lossBefore: number;
  lossAfter: number;
  lossBase: number;
  deltaFro: TttDelta;
}
export interface TttRunResult {
  /** The document's tokens (a SentencePiece model's BOS first, with an empty range). */
  tokens: TokenInfo[];
  /** (N) per position t, the NLL of token t + 1 with TTT (scored first) and without (the base model); NaN at the end. */
  nll: EncodedArray;
  nllBase: EncodedArray;
  chunks: TttChunkEvent[];
  /** Mean scored NLL and bits per byte (SentencePiece: the record's byte table); the base model's mean NLL. */
  val_loss: number;
  val_bpb: number | null;
  val_loss_base: number;
  settings: Required<Omit<TttRunParams, 'text' | 'warmStart'>>;
  /** Virtual layers (the length of every deltaFro.layers row). */
  layers: number;
  signal: SignalSpec;
  backend: string;
  family: Family;
}
/** Training a TTT layer on a frozen base, streamed like train/start; `$/cancel` stops it with a checkpoint. */
export interface PonderTrainParams {
  /** Files, folders or globs of text. */
  data: string[];
  steps: number;
  /** The frozen base (default: the loaded model's file). */
  base?: string;
  baseConfig?: string | Record<string, unknown>;
  /** Start from this TTT layer; else a new one (tttConfig sizes it: num_heads, head_dim, mini_batch_size, …). */
  ttt?: string;
  tttConfig?: Record<string, unknown>;
  chunk?: number;
  sslWeight?: number;
  lr?: number;
  batchSize?: number;
  evalInterval?: number;
  seed?: number;
  out?: string;
  resume?: string;
}

export interface RequestMap {
  initialize: [InitializeParams, InitializeResult, never];
  'model/load': [ModelLoadParams, ModelInfo, never];
  'model/info': [Record<string, never>, ModelInfo | null, never];
  analyze: [AnalyzeParams, AnalyzeResult, AnalyzeEvent];
  'eval/ppl': [EvalPplParams, PplResult, { done: number; total: number }];
  'eval/mc': [{ file: string; limit?: number }, McResult, { done: number; total: number }];
  /** The loaded model is A; B is loaded beside it for the request. */
  compare: [TextInput & { modelB: ModelRef; context?: number; stride?: number; heads?: boolean }, CompareResult, { model: 'A' | 'B'; done: number; total: number }];
  /** Per-token NLL of the document with and without the ablations (sliding windows). */
  'ablate/run': [TextInput & { ablations: Ablation[] }, { tokens: TokenInfo[]; nll: EncodedArray; base: EncodedArray }, never];
  'ablate/sweep': [TextInput & { mode: AblationMode; unit?: 'head' | 'layer' }, SweepResult, SweepCellEvent];
  'checkpoints/list': [{ folder: string }, CheckpointEntry[], never];
  'checkpoints/analyze': [TextInput & { paths: string[]; config?: string | Record<string, unknown> }, { tokens: TokenInfo[]; count: number }, TimelineEvent];
  'train/start': [TrainParams, TrainResult, TrainEvent];
  'train/stop': [{ runId?: string }, { stopped: boolean }, never];
  'train/pause': [{ runId?: string }, { paused: boolean }, never];
  'train/resume': [{ runId?: string }, { resumed: boolean }, never];
  /** Temporal LoRA on the loaded tlora model: NLL with the router's mixture vs each adapter alone and the base alone. */
  'tlora/losses': [TextInput & { context?: number; stride?: number }, TloraLossesResult, { done: number; total: number }];
  /** Temporal LoRA training (adapters per domain, then the router), streamed like train/start; `$/cancel` stops it with a checkpoint. */
  'tlora/train': [TloraTrainParams, TrainResult, TrainEvent];
  /** Follow a run's files as they grow; ends only by `$/cancel` (answered as Cancelled). */
  'runs/watch': [RunWatchParams, RunWatchResult, RunWatchEvent];
  /** A checkpoint's per-head signal means on a probe text, at low priority (yields between layers). */
  'runs/probe': [RunProbeParams, RunProbeResult, never];
  /** An experiment grid, resumed from its state file; `$/cancel` stops after the current micro-batch. */
  'grid/run': [GridRunParams, GridTable, GridEvent];
  /** A built-in grid spec (the seed's autoresearch table) with `data` filled in. */
  'grid/template': [{ name?: string; data?: string[] }, Record<string, unknown>, never];
  /** PonderTTT on the loaded model as its base: per chunk UPDATE/SKIP, signal and τ; NLL gated vs always vs never. */
  'ponder/run': [PonderRunParams, PonderRunResult, PonderChunkInfo];
  /** Training a PonderTTT TTT layer with the base frozen; `$/cancel` stops it with a checkpoint. */
  'ponder/train': [PonderTrainParams, TrainResult, TrainEvent];
  /** LoRA test-time training of the text on the loaded model: one progress message per chunk; `$/cancel` between chunks. */
  'ttt/run': [TttRunParams, TttRunResult, TttChunkEvent];
  shutdown: [Record<string, never>, null, never];
}
export type Method = keyof RequestMap;
export type ParamsOf<M extends Method> = RequestMap[M][0];
export type ResultOf<M extends Method> = RequestMap[M][1];
export type ProgressOf<M extends Method> = RequestMap[M][2];

export interface CancelParams {
  id: number;
}
export interface ProgressParams<V = unknown> {
  id: number;
  value: V;
}
export interface LogParams {
  level: 'info' | 'warn' | 'error';
  message: string;
}
export interface NotificationMap {
  '$/cancel': CancelParams;
  '$/progress': ProgressParams;
  '$/log': LogParams;
}

// ---------------------------------------------------------------------------------------------
// Extension ⇄ webview messages
// ---------------------------------------------------------------------------------------------

/** A watched run as the monitor holds it: every event so far (points, checkpoints) and its probes. */
export interface MonitorRunSnapshot {
  id: string;
  label: string;
  path: string;
  events: RunWatchEvent[];
  probes: { probe: RunProbeResult; source: 'probe' | 'document' }[];
}

/** What the explorer panel draws: the analysis, assembled on the host from the engine's events. */
export interface ExplorerData {
  documentUri: string;
  model: ModelInfo;
  tokens: TokenInfo[];
  result: AnalyzeResult;
  events: AnalyzeEvent[];
}

/** One result of the results panel (evaluation, compare, an ablation sweep); `source` names the text. */
export type ResultsView =
  | { kind: 'compare'; source: string; result: CompareResult }
  | { kind: 'ppl'; source: string; result: PplResult }
  | { kind: 'mc'; source: string; result: McResult }
  | {
      kind: 'sweep';
      source: string;
      mode: AblationMode;
      unit: 'head' | 'layer';
      layers: number;
      heads: number;
      /** The cells so far (streamed), then all of them. */
      cells: Omit<SweepCellEvent, 'dnll'>[];
      state: 'running' | 'done' | 'cancelled' | 'failed';
      error?: string;
      /** The cell whose per-token ΔNLL colours the editor. */
      selected?: { layer: number; head: number } | null;
    };

/** What the checkpoint timeline panel draws (extension/timeline.ts): the steps analysed so far, without their per-token arrays. */
export interface TimelineData {
  documentUri: string;
  /** The document and the run as the user knows them (file name, folder). */
  documentLabel: string;
  runLabel: string;
  layers: number;
  heads: number;
  /** Every checkpoint of the run in order, analysed or not yet. */
  checkpoints: CheckpointEntry[];
  steps: Omit<TimelineEvent, 'nll'>[];
  /** Labels of the per-head signals (the model's catalogue). */
  signals: SignalSpec[];
  /** The step whose NLL colours the editor (index into checkpoints), or null. */
  selected: number | null;
  state: 'running' | 'done' | 'cancelled' | 'failed';
  message?: string;
}

export type HostToWebview =
  | { type: 'timeline/data'; data: TimelineData }
  | { type: 'results/show'; view: ResultsView }
  | { type: 'explorer/data'; data: ExplorerData }
  | { type: 'explorer/focus'; layer: number; head: number }
  | { type: 'explorer/selection'; tokenIndex: number | null; role: 'query' | 'key' }
  | { type: 'explorer/clear' }
  | { type: 'monitor/event'; event: TrainEvent }
  | { type: 'monitor/replay'; events: TrainEvent[] }
  | { type: 'monitor/runs'; runs: MonitorRunSnapshot[]; grid: GridTable | null }
  | { type: 'monitor/runAdded'; run: MonitorRunSnapshot }
  | { type: 'monitor/runEvent'; runId: string; event: RunWatchEvent }
  | { type: 'monitor/runProbe'; runId: string; probe: RunProbeResult; source: 'probe' | 'document' }
  | { type: 'monitor/runRemoved'; runId: string }
  | { type: 'monitor/grid'; table: GridTable }
  | { type: 'export/request'; format: 'svg' | 'png' | 'json'; requestId: number }
  /** The LoRA-TTT chunk timeline: a run and the name of its document. */
  | { type: 'ttt/timeline'; source: string; result: TttRunResult };

export type WebviewToHost =
  | { type: 'timeline/selectStep'; index: number }
  | { type: 'ready' }
  | { type: 'results/selectCell'; layer: number; head: number }
  | { type: 'explorer/selectToken'; tokenIndex: number; role: 'query' | 'key' }
  | { type: 'explorer/focus'; layer: number; head: number }
  | { type: 'monitor/command'; command: 'start' | 'stop' | 'pause' | 'resume'; runId?: string }
  | { type: 'monitor/watch' }
  | { type: 'monitor/removeRun'; runId: string }
  | { type: 'monitor/analyzeCheckpoint'; path: string }
  | { type: 'monitor/analyzeAcross'; runId: string }
  | { type: 'export/result'; requestId: number; format: 'svg' | 'png' | 'json'; data: string; error?: string }
  /** Select the chunk's text in the editor. */
  | { type: 'ttt/revealChunk'; chunk: number }
  | { type: 'error'; message: string };
