/**
 * An analysis assembled from the engine's streamed events into per-token arrays over the whole
 * text (windows stitched together). Pure — no tfjs, no vscode, no DOM — so the extension host
 * (hover, decorations), the webviews and the HTML report all read the same structure.
 */
import type { AnalyzeEvent, AnalyzeLayerEvent, AnalyzeResult, TokenInfo } from '../protocol';
import { decodeArray } from '../codec';

export type ColorMetric = 'loraTok' | 'loraRel' | 'entropy' | 'nll' | 'leak' | 'attnMax';

interface WindowInfo {
  start: number; // first token index
  length: number;
  attn: (Float32Array | null)[]; // per layer (H, T, T)
  loraFro: (Float32Array | null)[]; // per layer (H)
}

export class AnalysisRecord {
  readonly tokens: TokenInfo[] = [];
  readonly windows: WindowInfo[] = [];
  L = 0;
  H = 0;
  /** (L, H, N) */
  headMax = new Float32Array(0);
  headArgmax = new Int32Array(0); // global key index
  headEntropy = new Float32Array(0);
  headDistance = new Float32Array(0);
  loraTok: Float32Array | null = null;
  loraRel: Float32Array | null = null;
  /** (L, N) global index of k* and (L, N, H) latent codes */
  latentKey = new Int32Array(0);
  latentCode = new Float32Array(0);
  /** (N) */
  nll = new Float32Array(0);
  leak: Float32Array | null = null;
  /** (N, K) */
  topIds = new Int32Array(0);
  topProbs = new Float32Array(0);
  K = 0;
  result: AnalyzeResult | null = null;

  constructor(readonly layers: number, readonly heads: number) {
    this.L = layers;
    this.H = heads;
  }

  static from(events: AnalyzeEvent[], layers: number, heads: number, result?: AnalyzeResult | null): AnalysisRecord {
    const r = new AnalysisRecord(layers, heads);
    for (const e of events) r.add(e);
    if (result) r.result = result;
    return r;
  }

  get N(): number {
    return this.tokens.length;
  }

  /** Add one streamed event (tokens events must come first for their window). */
  add(e: AnalyzeEvent): void {
    if (e.kind === 'tokens') {
      for (const t of e.tokens) this.tokens[t.index] = t;
      this.windows[e.window] = { start: e.tokenStart, length: e.tokens.length, attn: [], loraFro: [] };
      this.resize();
      return;
    }
    if (e.kind === 'layer') this.addLayer(e);
    else {
      const nll = decodeArray(e.nll), ids = decodeArray(e.topIds), probs = decodeArray(e.topProbs);
      const [T, K] = e.topIds.shape;
      if (this.K !== K) {
        this.K = K;
        this.topIds = grow(this.topIds, this.N * K) as Int32Array;
        this.topProbs = grow(this.topProbs, this.N * K) as Float32Array;
      }
      this.nll.set(nll, e.tokenStart);
      this.topIds.set(ids, e.tokenStart * K);
      this.topProbs.set(probs, e.tokenStart * K);
      if (e.leak) {
        this.leak ??= new Float32Array(this.N).fill(NaN);
        this.leak.set(decodeArray(e.leak), e.tokenStart);
      }
      void T;
    }
  }

  /** Re-lay the per-token arrays for the tokens seen so far (a window's tokens come before its layers). */
  private resize(): void {
    const N = this.N, { L, H } = this;
    if (this.headMax.length === L * H * N) return;
    this.headMax = regrid(this.headMax, L * H, N, 0);
    this.headArgmax = regrid(this.headArgmax, L * H, N, 0);
    this.headEntropy = regrid(this.headEntropy, L * H, N, 0);
    this.headDistance = regrid(this.headDistance, L * H, N, 0);
    if (this.loraTok) this.loraTok = regrid(this.loraTok, L * H, N, 0);
    if (this.loraRel) this.loraRel = regrid(this.loraRel, L * H, N, 0);
    this.latentKey = regrid(this.latentKey, L, N, 0);
    this.latentCode = regrid(this.latentCode, L, N * H, 0); // (L, N, H)
    this.nll = grow(this.nll, N, NaN) as Float32Array;
    if (this.leak) this.leak = grow(this.leak, N, NaN) as Float32Array;
    if (this.K) {
      this.topIds = grow(this.topIds, N * this.K) as Int32Array;
      this.topProbs = grow(this.topProbs, N * this.K) as Float32Array;
    }
  }

  private addLayer(e: AnalyzeLayerEvent): void {
    const { L, H } = this, N = this.N, l = e.layer, s = e.tokenStart;
    const T = e.headMax.shape[1];
    const max = decodeArray(e.headMax), arg = decodeArray(e.headArgmax), ent = decodeArray(e.headEntropy), dist = decodeArray(e.headDistance);
    const lt = e.loraTok ? decodeArray(e.loraTok) : null, lr = e.loraRel ? decodeArray(e.loraRel) : null;
    if (lt && !this.loraTok) this.loraTok = new Float32Array(L * H * N);
    if (lr && !this.loraRel) this.loraRel = new Float32Array(L * H * N);
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const dst = (l * H + h) * N + s + t, src = h * T + t;
        this.headMax[dst] = max[src];
        this.headArgmax[dst] = s + arg[src];
        this.headEntropy[dst] = ent[src];
        this.headDistance[dst] = dist[src];
        if (lt) this.loraTok![dst] = lt[src];
        if (lr) this.loraRel![dst] = lr[src];
      }
    }
    const key = decodeArray(e.latentKey), code = decodeArray(e.latentCode);
    for (let t = 0; t < T; t++) {
      this.latentKey[l * N + s + t] = s + key[t];
      for (let h = 0; h < H; h++) this.latentCode[(l * N + s + t) * H + h] = code[t * H + h];
    }
    const w = this.windows[e.window];
    if (w) {
      w.attn[l] = e.attn ? (decodeArray(e.attn) as Float32Array) : null;
      w.loraFro[l] = e.loraFro ? (decodeArray(e.loraFro) as Float32Array) : null;
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

  windowOf(t: number): number {
    return this.windows.findIndex((w) => w && t >= w.start && t < w.start + w.length);
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

  /** Metric value of token t for (layer, head); −1 means the mean over layers/heads. */
  metric(m: ColorMetric, t: number, layer = -1, head = -1): number {
    if (m === 'nll') return this.nll[t];
    if (m === 'leak') return this.leak ? this.leak[t] : NaN;
    const arr = m === 'loraTok' ? this.loraTok : m === 'loraRel' ? this.loraRel : m === 'entropy' ? this.headEntropy : this.headMax;
    if (!arr) return NaN;
    const ls = layer < 0 ? [...Array(this.L).keys()] : [layer];
    const hs = head < 0 ? [...Array(this.H).keys()] : [head];
    let sum = 0, n = 0;
    for (const l of ls) for (const h of hs) {
      const v = arr[(l * this.H + h) * this.N + t];
      if (Number.isFinite(v)) (sum += v), n++;
    }
    return n ? sum / n : NaN;
  }

  /** Head codes of a token: (L, H) of attention max, loraTok, entropy. */
  headCodes(t: number): { max: number; loraTok: number | null; entropy: number; argmax: number }[][] {
    const out = [];
    for (let l = 0; l < this.L; l++) {
      const row = [];
      for (let h = 0; h < this.H; h++) {
        const i = (l * this.H + h) * this.N + t;
        row.push({ max: this.headMax[i], loraTok: this.loraTok ? this.loraTok[i] : null, entropy: this.headEntropy[i], argmax: this.headArgmax[i] });
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

  loraFro(l: number, window: number): Float32Array | null {
    return this.windows[window]?.loraFro[l] ?? null;
  }
}

function grow(a: Float32Array | Int32Array, n: number, fill = 0): Float32Array | Int32Array {
  if (a.length >= n) return a;
  const b = a instanceof Int32Array ? new Int32Array(n) : new Float32Array(n);
  if (fill) b.fill(fill);
  b.set(a);
  return b;
}

/** Re-lay a (rows, width_old) array as (rows, width). */
function regrid<T extends Float32Array | Int32Array>(a: T, rows: number, width: number, fill: number): T {
  const old = rows ? a.length / rows : 0;
  if (old === width) return a;
  const b = (a instanceof Int32Array ? new Int32Array(rows * width) : new Float32Array(rows * width)) as T;
  if (fill) b.fill(fill);
  for (let r = 0; r < rows; r++) b.set(a.subarray(r * old, r * old + Math.min(old, width)), r * width);
  return b;
}
