/**
 * An analysis assembled from the engine's streamed events into per-token arrays over the whole
 * text (windows stitched together). Pure — no tfjs, no vscode, no DOM — so the extension host
 * (hover, decorations) and the CLI read the same structure. Signals are generic: whatever the
 * model's catalogue declares (ModelInfo.signals) is stored by its scope and read by name.
 */
import type { AnalyzeEvent, AnalyzeLayerEvent, AnalyzeResult, SignalSpec, TokenInfo } from '../protocol';
import { decodeArray } from '../codec';

/** What the token colours can show: a built-in metric, the name of a catalogued signal, or 'auto'. */
export type ColorMetric = string;
export const BUILTIN_METRICS = ['nll', 'leak', 'entropy', 'attnMax', 'distance'] as const;
const BUILTIN_LABELS: Record<string, string> = {
  nll: 'next-token surprisal (NLL, nats)',
  leak: 'causality leak of the adaptive path',
  entropy: 'attention entropy (nats)',
  attnMax: 'maximum attention probability',
  distance: 'mean attended distance (tokens)',
};
const BUILTIN_PER_HEAD = new Set(['entropy', 'attnMax', 'distance']);

/** The model facts the record needs (a subset of ModelInfo). */
export interface RecordModel {
  layers: number;
  heads: number;
  kvHeads?: number;
  kvHeadOf?: number[];
  signals?: SignalSpec[];
}

interface WindowInfo {
  start: number; // first token index
  length: number;
  /** Positions [ownFrom, ownTo) this window scores (sliding windows overlap). */
  ownFrom: number;
  ownTo: number;
  attn: (Float32Array | null)[]; // per layer (H, T, T)
  /** Head-scoped signals per name, per layer (H). */
  headSignals: Map<string, (Float32Array | null)[]>;
}

/** A per-token signal stored over the whole text: `rows` values per token (heads, kv heads, 1). */
interface TokenSignal {
  spec: SignalSpec;
  rows: number;
  perLayer: boolean;
  values: Float32Array; // (L?, rows, N)
}

export class AnalysisRecord {
  readonly tokens: TokenInfo[] = [];
  readonly windows: WindowInfo[] = [];
  readonly L: number;
  readonly H: number;
  readonly Hkv: number;
  readonly kvHeadOf: number[];
  readonly specs: SignalSpec[];
  /** (L, H, N) */
  headMax = new Float32Array(0);
  headArgmax = new Int32Array(0); // global key index
  headEntropy = new Float32Array(0);
  headDistance = new Float32Array(0);
  /** (L, N) global index of k* and (L, N, H) latent codes */
  latentKey = new Int32Array(0);
  latentCode = new Float32Array(0);
  /** (N) */
  nll = new Float32Array(0);
  /** (N) tokens of context each position had (itself included) in the window that scored it. */
  context = new Int32Array(0);
  leak: Float32Array | null = null;
  /** (N, K) */
  topIds = new Int32Array(0);
  topProbs = new Float32Array(0);
  K = 0;
  result: AnalyzeResult | null = null;
  /** The logit lens, when analysed with it: (L, N) rank and probability of the next token, (L, N, K) top-k. */
  lens: { rank: Int32Array; prob: Float32Array; topIds: Int32Array; topProbs: Float32Array; K: number } | null = null;
  /** Decoded text of every predicted id seen so far (from the output events and the result). */
  readonly vocabText: Record<number, string> = {};
  private readonly tokenSignals = new Map<string, TokenSignal>();

  constructor(model: RecordModel) {
    this.L = model.layers;
    this.H = model.heads;
    this.Hkv = model.kvHeads ?? model.heads;
    this.kvHeadOf = model.kvHeadOf ?? [...Array(this.H).keys()];
    this.specs = [...(model.signals ?? [])];
    for (const spec of this.specs) {
      const rows = spec.scope === 'head×token' ? this.H : spec.scope === 'kvhead×token' ? this.Hkv : spec.scope === 'token' || spec.scope === 'layer×token' ? 1 : spec.channels?.length ?? 0;
      if (rows) this.tokenSignals.set(spec.name, { spec, rows, perLayer: spec.perLayer, values: new Float32Array(0) });
    }
  }

  static from(events: AnalyzeEvent[], model: RecordModel, result?: AnalyzeResult | null): AnalysisRecord {
    const r = new AnalysisRecord(model);
    for (const e of events) r.add(e);
    if (result) r.setResult(result);
    return r;
  }

  setResult(result: AnalyzeResult): void {
    this.result = result;
    Object.assign(this.vocabText, result.vocabText);
  }

  get N(): number {
    return this.tokens.length;
  }

  /** Add one streamed event (tokens events must come first for their window). */
  add(e: AnalyzeEvent): void {
    if (e.kind === 'tokens') {
      for (const t of e.tokens) this.tokens[t.index] = t;
      const ownFrom = e.ownFrom ?? e.tokenStart, ownTo = e.ownTo ?? e.tokenStart + e.tokens.length;
      this.windows[e.window] = { start: e.tokenStart, length: e.tokens.length, ownFrom, ownTo, attn: [], headSignals: new Map() };
      this.resize();
      for (let p = ownFrom; p < ownTo; p++) this.context[p] = p - e.tokenStart + 1;
      return;
    }
    if (e.kind === 'layer') {
      this.addLayer(e);
      return;
    }
    const nll = decodeArray(e.nll), ids = decodeArray(e.topIds), probs = decodeArray(e.topProbs);
    const K = e.topIds.shape[1];
    if (this.K !== K) {
      this.K = K;
      this.topIds = grow(this.topIds, this.N * K) as Int32Array;
      this.topProbs = grow(this.topProbs, this.N * K) as Float32Array;
    }
    if (e.vocabText) Object.assign(this.vocabText, e.vocabText);
    const [from, to] = this.owned(e.window, e.tokenStart, nll.length);
    const s = e.tokenStart;
    this.nll.set(nll.subarray(from - s, to - s), from);
    this.topIds.set(ids.subarray((from - s) * K, (to - s) * K), from * K);
    this.topProbs.set(probs.subarray((from - s) * K, (to - s) * K), from * K);
    if (e.leak) {
      this.leak ??= new Float32Array(this.N).fill(NaN);
      this.leak.set(decodeArray(e.leak).subarray(from - s, to - s), from);
    }
    if (e.lens) this.addLens(e.lens, from, to, s);
  }

  private addLens(e: NonNullable<Extract<AnalyzeEvent, { kind: 'output' }>['lens']>, from: number, to: number, s: number): void {
    const [L, T, K] = e.topIds.shape, N = this.N;
    if (!this.lens || this.lens.rank.length !== L * N) {
      const old = this.lens;
      this.lens = { rank: new Int32Array(L * N), prob: new Float32Array(L * N).fill(NaN), topIds: new Int32Array(L * N * K), topProbs: new Float32Array(L * N * K), K };
      if (old) for (let l = 0; l < L; l++) {
        const n0 = old.rank.length / L;
        this.lens.rank.set(old.rank.subarray(l * n0, (l + 1) * n0), l * N);
        this.lens.prob.set(old.prob.subarray(l * n0, (l + 1) * n0), l * N);
        this.lens.topIds.set(old.topIds.subarray(l * n0 * K, (l + 1) * n0 * K), l * N * K);
        this.lens.topProbs.set(old.topProbs.subarray(l * n0 * K, (l + 1) * n0 * K), l * N * K);
      }
    }
    const rank = decodeArray(e.rank), prob = decodeArray(e.prob), ids = decodeArray(e.topIds), probs = decodeArray(e.topProbs);
    for (let l = 0; l < L; l++) {
      for (let p = from; p < to; p++) {
        const src = l * T + p - s, dst = l * N + p;
        this.lens.rank[dst] = rank[src];
        this.lens.prob[dst] = prob[src];
        this.lens.topIds.set(ids.subarray(src * K, (src + 1) * K), dst * K);
        this.lens.topProbs.set(probs.subarray(src * K, (src + 1) * K), dst * K);
      }
    }
  }

  /** Logit lens of position t: per layer the next token's rank and probability and the top-k; null without a lens. */
  lensAt(t: number): { layer: number; rank: number; prob: number; top: { id: number; p: number }[] }[] | null {
    const lens = this.lens;
    if (!lens) return null;
    const L = lens.rank.length / this.N, K = lens.K;
    return Array.from({ length: L }, (_, l) => {
      const i = l * this.N + t;
      return { layer: l, rank: lens.rank[i], prob: lens.prob[i], top: Array.from({ length: K }, (_, k) => ({ id: lens.topIds[i * K + k], p: lens.topProbs[i * K + k] })) };
    });
  }

  /** The first layer whose lens has the actual next token in its top `k` (−1: none; null: no lens). */
  lensEntryLayer(t: number, k = 5): number | null {
    const at = this.lensAt(t);
    if (!at) return null;
    return at.find((e) => e.rank >= 1 && e.rank <= k)?.layer ?? -1;
  }

  /** The positions [from, to) a window owns (all of it for events without ownership). */
  private owned(window: number, start: number, T: number): [number, number] {
    const w = this.windows[window];
    return w ? [w.ownFrom, w.ownTo] : [start, start + T];
  }

  /** Re-lay the per-token arrays for the tokens seen so far (a window's tokens come before its layers). */
  private resize(): void {
    const N = this.N, { L, H } = this;
    if (this.headMax.length === L * H * N) return;
    this.headMax = regrid(this.headMax, L * H, N, 0);
    this.headArgmax = regrid(this.headArgmax, L * H, N, 0);
    this.headEntropy = regrid(this.headEntropy, L * H, N, 0);
    this.headDistance = regrid(this.headDistance, L * H, N, 0);
    this.latentKey = regrid(this.latentKey, L, N, 0);
    this.latentCode = regrid(this.latentCode, L, N * H, 0); // (L, N, H)
    for (const s of this.tokenSignals.values()) s.values = regrid(s.values, (s.perLayer ? L : 1) * s.rows, N, NaN);
    this.nll = grow(this.nll, N, NaN) as Float32Array;
    this.context = grow(this.context, N) as Int32Array;
    if (this.leak) this.leak = grow(this.leak, N, NaN) as Float32Array;
    if (this.K) {
      this.topIds = grow(this.topIds, N * this.K) as Int32Array;
      this.topProbs = grow(this.topProbs, N * this.K) as Float32Array;
    }
  }

  private addLayer(e: AnalyzeLayerEvent): void {
    const { H } = this, N = this.N, l = e.layer, s = e.tokenStart;
    const T = e.headMax.shape[1];
    const [from, to] = this.owned(e.window, s, T);
    const t0 = from - s, t1 = to - s;
    const max = decodeArray(e.headMax), arg = decodeArray(e.headArgmax), ent = decodeArray(e.headEntropy), dist = decodeArray(e.headDistance);
    for (let h = 0; h < H; h++) {
      for (let t = t0; t < t1; t++) {
        const dst = (l * H + h) * N + s + t, src = h * T + t;
        this.headMax[dst] = max[src];
        this.headArgmax[dst] = s + arg[src];
        this.headEntropy[dst] = ent[src];
        this.headDistance[dst] = dist[src];
      }
    }
    const key = decodeArray(e.latentKey), code = decodeArray(e.latentCode);
    for (let t = t0; t < t1; t++) {
      this.latentKey[l * N + s + t] = s + key[t];
      for (let h = 0; h < H; h++) this.latentCode[(l * N + s + t) * H + h] = code[t * H + h];
    }
    const w = this.windows[e.window];
    if (w) w.attn[l] = e.attn ? (decodeArray(e.attn) as Float32Array) : null;
    for (const [name, enc] of Object.entries(e.signals ?? {})) {
      const values = decodeArray(enc) as Float32Array;
      const ts = this.tokenSignals.get(name);
      if (ts) {
        for (let r = 0; r < ts.rows; r++) {
          const base = ((ts.perLayer ? l : 0) * ts.rows + r) * N + s;
          for (let t = t0; t < t1; t++) ts.values[base + t] = values[r * T + t];
        }
      } else if (w) {
        const perLayer = w.headSignals.get(name) ?? [];
        perLayer[l] = values;
        w.headSignals.set(name, perLayer);
      }
    }
  }

  /** Index of the token at a document offset (UTF-16), or −1. */
  tokenAt(offset: number): number {
    let lo = 0, hi = this.N - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1, t = this.tokens[mid];
      if (offset < t.start) hi = mid - 1;
      else if (offset >= t.end) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** The window that scores position t (where its summaries and attention row come from). */
  windowOf(t: number): number {
    return this.windows.findIndex((w) => w && t >= w.ownFrom && t < w.ownTo);
  }

  /** Attention row of query `t` for (layer, head), over its window's keys (window-relative). */
  attnRow(l: number, h: number, t: number): Float32Array | null {
    const wi = this.windowOf(t);
    const w = this.windows[wi];
    const a = w?.attn[l];
    if (!a) return null;
    const T = w.length, q = t - w.start;
    return a.subarray((h * T + q) * T, (h * T + q + 1) * T);
  }

  /**
   * Adds (or replaces) a per-token signal computed elsewhere — compare's dNll, an ablation's ΔNLL,
   * a checkpoint's NLL — so the views colour by it like any catalogued signal. (N) values.
   */
  setTokenSignal(spec: SignalSpec, values: ArrayLike<number>): void {
    if (values.length !== this.N) throw new Error(`setTokenSignal: ${values.length} values for ${this.N} tokens`);
    if (!this.specs.some((s) => s.name === spec.name)) (this.specs as SignalSpec[]).push(spec);
    this.tokenSignals.set(spec.name, { spec: { ...spec, scope: 'token', perLayer: false }, rows: 1, perLayer: false, values: Float32Array.from(values) });
  }

  spec(name: string): SignalSpec | undefined {
    return this.specs.find((s) => s.name === name);
  }

  /** Does this analysis carry values for the signal (per token)? */
  hasTokenSignal(name: string): boolean {
    return this.tokenSignals.has(name);
  }

  /** A per-token signal for (layer, head); NaN where absent. kv-head signals read head h's kv head. */
  signalAt(name: string, t: number, layer: number, head: number): number {
    const s = this.tokenSignals.get(name);
    if (!s) return NaN;
    const row = s.rows === 1 ? 0 : s.spec.scope === 'kvhead×token' ? this.kvHeadOf[head] ?? 0 : head;
    return s.values[((s.perLayer ? layer : 0) * s.rows + row) * this.N + t];
  }

  /** A head-scoped signal of one window and layer (H), e.g. loraFro. */
  headSignal(name: string, layer: number, window: number): Float32Array | null {
    return this.windows[window]?.headSignals.get(name)?.[layer] ?? null;
  }

  /** 'auto' → the model's first per-token signal (its catalogue order is its preference), else entropy. */
  resolveMetric(m: ColorMetric): ColorMetric {
    if (m !== 'auto' && (BUILTIN_LABELS[m] || this.tokenSignals.has(m))) return m;
    const first = [...this.tokenSignals.values()].find((s) => s.spec.scope !== 'token' || s.spec.name !== 'dNll');
    return first?.spec.name ?? 'entropy';
  }

  metricLabel(m: ColorMetric): string {
    const s = this.tokenSignals.get(m);
    return s ? `${s.spec.label}${s.spec.unit ? ` (${s.spec.unit})` : ''}` : BUILTIN_LABELS[m] ?? m;
  }

  /** Does the metric have a value per layer and head (so a focus applies)? */
  metricPerHead(m: ColorMetric): boolean {
    const s = this.tokenSignals.get(m);
    return s ? (s.rows > 1 && !s.spec.channels) || s.spec.scope === 'kvhead×token' : BUILTIN_PER_HEAD.has(m);
  }

  /** Every metric this analysis can colour by: built-ins (leak only when audited) then signals. */
  metrics(): { name: string; label: string }[] {
    const builtin = BUILTIN_METRICS.filter((m) => m !== 'leak' || this.leak).map((m) => ({ name: m, label: BUILTIN_LABELS[m] }));
    return [...builtin, ...[...this.tokenSignals.values()].map((s) => ({ name: s.spec.name, label: this.metricLabel(s.spec.name) }))];
  }

  /** Metric value of token t for (layer, head); −1 means the mean over layers/heads. */
  metric(metric: ColorMetric, t: number, layer = -1, head = -1): number {
    const m = this.resolveMetric(metric);
    if (this.tokenSignals.get(m)?.spec.channels) return this.dominantChannel(m, t, layer);
    if (m === 'nll') return this.nll[t];
    if (m === 'leak') return this.leak ? this.leak[t] : NaN;
    const builtin = m === 'entropy' ? this.headEntropy : m === 'attnMax' ? this.headMax : m === 'distance' ? this.headDistance : null;
    const s = this.tokenSignals.get(m);
    if (!builtin && !s) return NaN;
    const ls = layer < 0 || (s && !s.perLayer) ? (s && !s.perLayer ? [0] : [...Array(this.L).keys()]) : [layer];
    const hs = head < 0 || (s && s.rows === 1) ? (s && s.rows === 1 ? [0] : [...Array(this.H).keys()]) : [head];
    let sum = 0, n = 0;
    for (const l of ls) {
      for (const h of hs) {
        const v = builtin ? builtin[(l * this.H + h) * this.N + t] : this.signalAt(m, t, l, h);
        if (Number.isFinite(v)) (sum += v), n++;
      }
    }
    return n ? sum / n : NaN;
  }

  /** Per-token signals that are per head (head×token, kvhead×token): what the hover grid shows. */
  headTokenSignals(): SignalSpec[] {
    return [...this.tokenSignals.values()].filter((s) => (s.rows > 1 && !s.spec.channels) || s.spec.scope === 'kvhead×token').map((s) => s.spec);
  }

  /** Signals with labelled channels (a Temporal LoRA router's adapters): hover lists them, colours are categorical. */
  channelSignals(): SignalSpec[] {
    return [...this.tokenSignals.values()].filter((s) => s.spec.channels).map((s) => s.spec);
  }

  /** A channelled signal's values at token t by label, at one layer or averaged over layers (−1); null without it. */
  channelsAt(name: string, t: number, layer = -1): { label: string; value: number }[] | null {
    const s = this.tokenSignals.get(name);
    if (!s?.spec.channels) return null;
    const layers = !s.perLayer ? [0] : layer < 0 ? [...Array(this.L).keys()] : [layer];
    return s.spec.channels.map((label, r) => {
      let sum = 0, n = 0;
      for (const l of layers) {
        const v = s.values[((s.perLayer ? l : 0) * s.rows + r) * this.N + t];
        if (Number.isFinite(v)) (sum += v), n++;
      }
      return { label, value: n ? sum / n : NaN };
    });
  }

  /** The index of the largest channel at token t (categorical colour), NaN where there is no value. */
  dominantChannel(name: string, t: number, layer = -1): number {
    const c = this.channelsAt(name, t, layer);
    if (!c) return NaN;
    let best = -1;
    c.forEach((x, i) => {
      if (Number.isFinite(x.value) && (best < 0 || x.value > c[best].value)) best = i;
    });
    return best < 0 ? NaN : best;
  }

  /** Head codes of a token: (L, H) of attention max, entropy, argmax and every per-head signal. */
  headCodes(t: number): { max: number; entropy: number; argmax: number; signals: Record<string, number> }[][] {
    const perHead = this.headTokenSignals();
    const out = [];
    for (let l = 0; l < this.L; l++) {
      const row = [];
      for (let h = 0; h < this.H; h++) {
        const i = (l * this.H + h) * this.N + t;
        const signals: Record<string, number> = {};
        for (const s of perHead) signals[s.name] = this.signalAt(s.name, t, l, h);
        row.push({ max: this.headMax[i], entropy: this.headEntropy[i], argmax: this.headArgmax[i], signals });
      }
      out.push(row);
    }
    return out;
  }

  latent(l: number, t: number): { key: number; code: number[] } {
    const i = l * this.N + t;
    return { key: this.latentKey[i], code: Array.from(this.latentCode.subarray(i * this.H, (i + 1) * this.H)) };
  }

  top(t: number): { id: number; p: number }[] {
    const out = [];
    for (let k = 0; k < this.K; k++) out.push({ id: this.topIds[t * this.K + k], p: this.topProbs[t * this.K + k] });
    return out;
  }
}

function grow(a: Float32Array | Int32Array, n: number, fill = 0): Float32Array | Int32Array {
  if (a.length >= n) return a;
  const b = a instanceof Int32Array ? new Int32Array(n) : new Float32Array(n);
  if (fill !== 0) b.fill(fill);
  b.set(a);
  return b;
}

/** Re-lay a (rows, width_old) array as (rows, width). */
function regrid<T extends Float32Array | Int32Array>(a: T, rows: number, width: number, fill: number): T {
  const old = rows ? a.length / rows : 0;
  if (old === width) return a;
  const b = (a instanceof Int32Array ? new Int32Array(rows * width) : new Float32Array(rows * width)) as T;
  if (fill !== 0) b.fill(fill);
  for (let r = 0; r < rows; r++) b.set(a.subarray(r * old, r * old + Math.min(old, width)), r * width);
  return b;
}
