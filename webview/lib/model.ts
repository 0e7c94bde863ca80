/**
 * The webview's own model of an analysis, built from protocol types only (ExplorerData and its
 * AnalyzeEvents; the pure engine/codec.ts decoders). Per-token quantities are stitched over the
 * sliding windows with the ownership rule of AnalyzeTokensEvent (each position is read from the
 * one window that owns it, [ownFrom, ownTo)); attention maps stay per window, decoded lazily
 * (attentionMap.ts). Signals are generic: whatever ModelInfo.signals declares is stored by its
 * scope — per token (`…×token`, `token`) as (layers, rows, N) tracks, per window (`head`,
 * `chunk`, …) as raw arrays — and the head summaries, NLL and leak are tracks of the same kind,
 * so every view can show any of them by name.
 */
import type { AnalyzeLayerEvent, AnalyzeOutputEvent, AnalyzeResult, AnalyzeTokensEvent, EncodedArray, ExplorerData, ModelInfo, SignalSpec, TokenInfo } from '../../engine/protocol';
import { decodeArray } from '../../engine/codec';
import { AttentionMap } from './attentionMap';

export interface WindowModel {
  index: number;
  /** First token (document index) and length. */
  start: number;
  length: number;
  /** Positions [ownFrom, ownTo) this window reports. */
  ownFrom: number;
  ownTo: number;
  /** Per layer: the wire's attention map (absent: not sent for that layer). */
  attentionWire: (EncodedArray | undefined)[];
  /** Per name, per layer: signals that live per window (scope `head`, `chunk`, …). */
  windowSignals: Map<string, (Float32Array | undefined)[]>;
}

/** A signal with a value per token: (layers, rows, N), NaN where nothing was reported. */
export interface SignalTrack {
  spec: SignalSpec;
  /** Heads, kv heads, adapters… or 1. */
  rows: number;
  /** L when reported per layer, else 1. */
  layers: number;
  values: Float32Array;
}

/** The head summaries and output quantities, described like catalogue signals. */
const BUILTIN: SignalSpec[] = [
  { name: 'attnMax', scope: 'head×token', label: 'attention max', range: [0, 1], description: 'the largest attention weight of the query', mechanism: 'attention', perLayer: true },
  { name: 'entropy', scope: 'head×token', label: 'attention entropy', unit: 'nats', description: 'entropy of the query’s attention distribution', mechanism: 'attention', perLayer: true },
  { name: 'distance', scope: 'head×token', label: 'attended distance', unit: 'tokens', description: 'mean attended distance Σ_k p·|t − k|', mechanism: 'attention', perLayer: true },
  { name: 'nll', scope: 'token', label: 'NLL', unit: 'nats', description: 'negative log-likelihood of the next token (of the token itself for diffusion models)', mechanism: 'output', perLayer: false },
  {
    name: 'leak',
    scope: 'token',
    label: 'causality leak',
    description: 'max |logits_t(window) − logits_t(prefix ending at t)|: a pooled hypernetwork lets a token’s value update see later tokens',
    mechanism: 'causality audit',
    perLayer: false,
  },
];

/** Does a scope carry one value per token (and so stitch over windows)? */
export function perTokenScope(scope: string): boolean {
  return scope === 'token' || scope.endsWith('×token');
}

export class AnalysisModel {
  readonly tokens: TokenInfo[];
  readonly N: number;
  readonly L: number;
  readonly H: number;
  readonly Hkv: number;
  readonly kvHeadOf: number[];
  readonly windows: WindowModel[] = [];
  /** Catalogue signals first (the model's order is its preference), then the built-ins. */
  readonly specs: SignalSpec[];
  /** (L, H, N) global index of each query's most-attended key. */
  readonly headArgmax: Int32Array;
  /** (L, N) global index of k*, and (L, N, H) latent codes z[l][t][k*]. */
  readonly latentKey: Int32Array;
  readonly latentCode: Float32Array;
  /** Per token: was its latent code reported at layer l? (L, N) */
  readonly hasLatent: Uint8Array;
  /** (N, K) top-k predicted ids and probabilities. */
  topIds = new Int32Array(0);
  topProbs = new Float32Array(0);
  K = 0;
  readonly vocabText: Record<number, string> = {};
  private readonly tracks = new Map<string, SignalTrack>();
  private readonly maps = new Map<string, AttentionMap>();
  private readonly means = new Map<string, number>();

  constructor(
    readonly model: ModelInfo,
    tokens: TokenInfo[],
    readonly result: AnalyzeResult | null,
  ) {
    this.tokens = tokens.slice();
    this.N = tokens.length;
    this.L = model.layers;
    this.H = model.heads;
    this.Hkv = model.kvHeads || model.heads;
    this.kvHeadOf = model.kvHeadOf?.length === this.H ? model.kvHeadOf : [...Array(this.H).keys()];
    const catalogue = model.signals ?? [];
    this.specs = [...catalogue, ...BUILTIN.filter((b) => !catalogue.some((s) => s.name === b.name))];
    const { N, L, H } = this;
    this.headArgmax = new Int32Array(L * H * N);
    this.latentKey = new Int32Array(L * N);
    this.latentCode = new Float32Array(L * N * H);
    this.hasLatent = new Uint8Array(L * N);
    for (const b of ['attnMax', 'entropy', 'distance']) this.makeTrack(this.spec(b)!, H);
    this.makeTrack(this.spec('nll')!, 1);
    if (result) Object.assign(this.vocabText, result.vocabText);
  }

  static from(data: ExplorerData): AnalysisModel {
    const tokens = data.tokens.slice();
    for (const e of data.events) if (e.kind === 'tokens') for (const t of e.tokens) tokens[t.index] ??= t;
    const m = new AnalysisModel(data.model, tokens.filter((t) => t !== undefined), data.result);
    for (const e of data.events) if (e.kind === 'tokens') m.addTokens(e);
    for (const e of data.events) {
      if (e.kind === 'layer') m.addLayer(e);
      else if (e.kind === 'output') m.addOutput(e);
    }
    return m;
  }

  spec(name: string): SignalSpec | undefined {
    return this.specs.find((s) => s.name === name);
  }

  track(name: string): SignalTrack | undefined {
    return this.tracks.get(name);
  }

  /** Every per-token signal with values in this analysis, in catalogue order. */
  allTracks(): SignalTrack[] {
    return this.specs.map((s) => this.tracks.get(s.name)).filter((t): t is SignalTrack => !!t);
  }

  /** Tracks with a row per head or kv head: what the heads × tokens strips and the overview show. */
  headTracks(): SignalTrack[] {
    return this.allTracks().filter((t) => t.spec.scope === 'head×token' || t.spec.scope === 'kvhead×token');
  }

  /** Window-scoped signals (one value per head, per chunk, … of each window and layer). */
  windowSpecs(): SignalSpec[] {
    return this.specs.filter((s) => !perTokenScope(s.scope) && this.windows.some((w) => w.windowSignals.has(s.name)));
  }

  /** The row a head reads in a track: its own, its kv head's (GQA), or the only one. */
  rowOf(track: SignalTrack, head: number): number {
    if (track.rows === 1) return 0;
    if (track.spec.scope === 'kvhead×token') return this.kvHeadOf[head] ?? 0;
    return Math.min(head, track.rows - 1);
  }

  /** Value of a track at (layer, row, token); NaN where absent. */
  at(track: SignalTrack, layer: number, row: number, t: number): number {
    const l = track.layers === 1 ? 0 : layer;
    return track.values[(l * track.rows + row) * this.N + t];
  }

  /** Value of a signal for head h at token t (any per-token scope). */
  valueFor(name: string, layer: number, head: number, t: number): number {
    const tr = this.tracks.get(name);
    return tr ? this.at(tr, layer, this.rowOf(tr, head), t) : NaN;
  }

  /** Mean over the tokens that have a value (cached): an overview cell's summary of a head. */
  meanOf(track: SignalTrack, layer: number, row: number): number {
    const key = `${track.spec.name}:${track.layers === 1 ? 0 : layer}:${row}`;
    let m = this.means.get(key);
    if (m === undefined) {
      let sum = 0, n = 0;
      const base = ((track.layers === 1 ? 0 : layer) * track.rows + row) * this.N;
      for (let t = 0; t < this.N; t++) {
        const v = track.values[base + t];
        if (Number.isFinite(v)) (sum += v), n++;
      }
      m = n ? sum / n : NaN;
      this.means.set(key, m);
    }
    return m;
  }

  windowSignal(name: string, window: number, layer: number): Float32Array | null {
    const w = this.windows[window];
    const perLayer = w?.windowSignals.get(name);
    return perLayer?.[this.spec(name)?.perLayer === false ? 0 : layer] ?? null;
  }

  /** The window that owns position t (−1 if none). */
  windowOf(t: number): number {
    let lo = 0, hi = this.windows.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1, w = this.windows[mid];
      if (t < w.ownFrom) hi = mid - 1;
      else if (t >= w.ownTo) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** The attention map of a window and layer, or null where it was not sent. */
  attention(window: number, layer: number): AttentionMap | null {
    const enc = this.windows[window]?.attentionWire[layer];
    if (!enc) return null;
    const key = `${window}:${layer}`;
    let map = this.maps.get(key);
    if (!map) this.maps.set(key, (map = new AttentionMap(enc)));
    return map;
  }

  latent(l: number, t: number): { key: number; code: Float32Array } {
    const i = l * this.N + t;
    return { key: this.latentKey[i], code: this.latentCode.subarray(i * this.H, (i + 1) * this.H) };
  }

  top(t: number): { id: number; p: number; text: string }[] {
    const out = [];
    for (let k = 0; k < this.K; k++) {
      const id = this.topIds[t * this.K + k], p = this.topProbs[t * this.K + k];
      if (Number.isFinite(p) && p > 0) out.push({ id, p, text: this.vocabText[id] ?? `#${id}` });
    }
    return out;
  }

  // -- building ---------------------------------------------------------------------------

  private makeTrack(spec: SignalSpec, rows: number): SignalTrack {
    const layers = spec.perLayer ? this.L : 1;
    const track: SignalTrack = { spec, rows, layers, values: new Float32Array(layers * rows * this.N).fill(NaN) };
    this.tracks.set(spec.name, track);
    return track;
  }

  private addTokens(e: AnalyzeTokensEvent): void {
    const ownFrom = e.ownFrom ?? e.tokenStart, ownTo = e.ownTo ?? e.tokenStart + e.tokens.length;
    this.windows[e.window] = { index: e.window, start: e.tokenStart, length: e.tokens.length, ownFrom, ownTo, attentionWire: [], windowSignals: new Map() };
  }

  /** Window-relative [t0, t1) of the positions a window owns, clipped to its length. */
  private owned(window: number, start: number, T: number): [number, number] {
    const w = this.windows[window];
    if (!w) return [0, T];
    return [Math.max(0, w.ownFrom - start), Math.min(T, w.ownTo - start)];
  }

  /** Copy the owned part of a (rows, T) window array into a (rows, N) slice at `base`. */
  private stitch(dst: Float32Array | Int32Array, base: number, src: ArrayLike<number>, rows: number, T: number, s: number, t0: number, t1: number, add = 0): void {
    if (src.length < rows * T) return; // a malformed array: leave the positions unreported
    for (let r = 0; r < rows; r++) {
      const d = base + r * this.N + s, o = r * T;
      for (let t = t0; t < t1 && s + t < this.N; t++) dst[d + t] = src[o + t] + add;
    }
  }

  private addLayer(e: AnalyzeLayerEvent): void {
    const { H, N } = this, l = e.layer, s = e.tokenStart;
    if (l < 0 || l >= this.L) return;
    const T = e.headMax.shape[1] ?? 0;
    const [t0, t1] = this.owned(e.window, s, T);
    const summaries: [string, EncodedArray][] = [['attnMax', e.headMax], ['entropy', e.headEntropy], ['distance', e.headDistance]];
    for (const [name, enc] of summaries) this.stitch(this.tracks.get(name)!.values, l * H * N, decodeArray(enc), H, T, s, t0, t1);
    this.stitch(this.headArgmax, l * H * N, decodeArray(e.headArgmax), H, T, s, t0, t1, s);
    const key = decodeArray(e.latentKey), code = decodeArray(e.latentCode);
    for (let t = t0; t < t1 && s + t < N; t++) {
      const i = l * N + s + t;
      this.latentKey[i] = s + key[t];
      this.hasLatent[i] = 1;
      for (let h = 0; h < H; h++) this.latentCode[i * H + h] = code[t * H + h];
    }
    const w = this.windows[e.window];
    if (w && e.attn) w.attentionWire[l] = e.attn;
    for (const [name, enc] of Object.entries(e.signals ?? {})) this.addSignal(name, enc, l, e.window, s, t0, t1);
  }

  private addSignal(name: string, enc: EncodedArray, layer: number, window: number, s: number, t0: number, t1: number): void {
    const spec = this.spec(name);
    if (!spec) return; // not in the catalogue: nothing says what it means
    const values = decodeArray(enc) as Float32Array;
    if (perTokenScope(spec.scope)) {
      const T = enc.shape[enc.shape.length - 1];
      const rows = enc.shape.length >= 2 ? enc.shape[0] : 1;
      const track = this.tracks.get(name) ?? this.makeTrack(spec, rows);
      if (track.rows !== rows) return;
      const l = track.layers === 1 ? 0 : layer;
      this.stitch(track.values, l * rows * this.N, values, rows, T, s, t0, t1);
      return;
    }
    const w = this.windows[window];
    if (!w) return;
    const perLayer = w.windowSignals.get(name) ?? [];
    perLayer[spec.perLayer ? layer : 0] = values;
    w.windowSignals.set(name, perLayer);
  }

  private addOutput(e: AnalyzeOutputEvent): void {
    const s = e.tokenStart;
    const nll = decodeArray(e.nll);
    const T = nll.length;
    const [t0, t1] = this.owned(e.window, s, T);
    this.stitch(this.tracks.get('nll')!.values, 0, nll, 1, T, s, t0, t1);
    if (e.leak) this.stitch((this.tracks.get('leak') ?? this.makeTrack(this.spec('leak')!, 1)).values, 0, decodeArray(e.leak), 1, T, s, t0, t1);
    const K = e.topIds.shape[1] ?? 0;
    if (K && this.K !== K) {
      this.K = K;
      this.topIds = new Int32Array(this.N * K);
      this.topProbs = new Float32Array(this.N * K);
    }
    if (K) {
      const ids = decodeArray(e.topIds), probs = decodeArray(e.topProbs);
      for (let t = t0; t < t1 && s + t < this.N; t++) {
        for (let k = 0; k < K; k++) {
          this.topIds[(s + t) * K + k] = ids[t * K + k];
          this.topProbs[(s + t) * K + k] = probs[t * K + k];
        }
      }
    }
    if (e.vocabText) Object.assign(this.vocabText, e.vocabText);
  }
}
