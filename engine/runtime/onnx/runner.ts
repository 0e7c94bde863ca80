/**
 * The analysis runtime on onnxruntime: the family's program traced once into an ONNX graph (the
 * same code TensorFlow.js runs), with everything the views need computed in the graph — head
 * summaries, latent codes, signals, NLL and top-k of the selected positions (no full logits cross
 * into JS), attention maps cast to float16 behind an `If` per layer so that only the layers a
 * request asks for cost anything. One session per model serves every window length (the batch and
 * sequence dimensions are free); the causality audit reuses it for each prefix with the head applied
 * to one row only.
 */
import type { DeviceInfo, ModelConfig } from '../../protocol';
import type { HostTensor } from '../../io/tensor';
import { DeviceError, throwIfCancelled, type CancelToken } from '../../errors';
import type { FamilyDef, ParamSpec } from '../../models/family';
import { applyHead, storedPermutation, storedShape } from '../../models/family';
import { distanceMatrix } from '../../models/layers';
import { layerSummaries, lensPredictions, predictions, predictionsNll } from '../../analysis/summaries';
import type { InferenceRuntime, LensOutput, NllRequest, WindowLayer, WindowOutput, WindowRequest } from '../runner';
import { MAX_TOP_K } from '../runner';
import { GraphOps, type GraphOutput, type GraphWeight, type Sym } from './builder';
import { OnnxType } from './proto';
import { createSession, ortTensor, type OrtChoice, type OrtSession, type OrtTensor } from './ort';

const PRODUCER = 'headlens';

/** Stored-layout weights from PyTorch-layout host tensors (nn.Linear weights and banks of them transposed). */
export function storedWeights(specs: ParamSpec[], weights: Map<string, HostTensor>): (name: string) => GraphWeight {
  const bySpec = new Map(specs.map((s) => [s.name, s]));
  return (name) => {
    const spec = bySpec.get(name);
    const w = weights.get(name);
    if (!spec || !w) throw new Error(`the graph asks for '${name}', which the model does not have`);
    const values = w.values instanceof Float32Array ? w.values : Float32Array.from(w.values);
    if (!storedPermutation(spec)) return { shape: spec.shape, values };
    // a plain Linear weight is a bank of one matrix
    const [banks, out, inp] = spec.linear ? [1, ...spec.shape] : spec.shape;
    const t = new Float32Array(values.length);
    for (let b = 0; b < banks; b++) {
      const src = values.subarray(b * out * inp, (b + 1) * out * inp), dst = t.subarray(b * out * inp, (b + 1) * out * inp);
      for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) dst[i * out + o] = src[o * inp + i];
    }
    return { shape: storedShape(spec), values: t };
  };
}

interface AnalysisGraph {
  bytes: Uint8Array;
  layers: number;
  heads: number;
  signals: string[][]; // per layer
  diffusion: boolean;
}

/** The analysis graph: inputs ids, positions, targets, head_index, audit_index, want_attn, controls (and t). */
export function buildAnalysisGraph(def: FamilyDef, c: ModelConfig, weights: (name: string) => GraphWeight): AnalysisGraph {
  const g = new GraphOps(weights);
  const L = def.layerCount(c), H = c.n_head;
  const diffusion = def.objective(c) === 'diffusion';
  const ids = g.input('ids', 'int32', [1, 'T']);
  const positions = g.input('positions', 'int32', ['T']);
  const targets = g.input('targets', 'int32', [1, 'T']);
  const headIndex = g.input('head_index', 'int32', ['M']);
  const auditIndex = g.input('audit_index', 'int32', ['A']);
  const wantAttn = g.input('want_attn', 'bool', [L]);
  const controls = { headScale: g.input('head_scale', 'float32', [L, H]), headMean: g.input('head_mean', 'float32', [L, H]), adaptiveOff: g.input('adaptive_off', 'float32', [L, H]) };
  const t = diffusion ? g.input('t', 'int32', [1]) : undefined;
  const prog = def.program(g, c, { ids, positions, t, controls });
  const dist = distanceMatrix(g, positions);
  const outputs: GraphOutput[] = [];
  const signals: string[][] = [];
  for (let l = 0; l < L; l++) {
    const out = prog.step(l);
    const s = layerSummaries(g, out.attn, dist, positions);
    for (const [k, v] of Object.entries(s)) outputs.push({ sym: v, name: `L${l}.${k}` });
    outputs.push({ sym: g.halfIf(g.gather(wantAttn, g.constant(new Int32Array([l]), [], 'int32')), out.attn, `L${l}.attn`), name: `L${l}.attn`, type: OnnxType.FLOAT16 });
    outputs.push({ sym: out.hidden, name: `L${l}.residual` });
    signals.push(Object.keys(out.signals));
    for (const [k, v] of Object.entries(out.signals)) outputs.push({ sym: v, name: `L${l}.signal.${k}` });
  }
  const rows = g.gather(prog.final(), headIndex, 1); // (1, M, C)
  const logits = applyHead(g, def.head(c), rows); // (1, M, V)
  const p = predictions(g, logits, g.gather(targets, headIndex, 1), MAX_TOP_K);
  outputs.push({ sym: p.nll, name: 'nll' }, { sym: p.topIds, name: 'top_ids' }, { sym: p.topProbs, name: 'top_probs' });
  outputs.push({ sym: g.gather(logits, auditIndex, 1), name: 'audit_logits' });
  return { bytes: g.build(outputs, PRODUCER, '1'), layers: L, heads: H, signals, diffusion };
}

/** The logit-lens graph: residual rows (M, C) → final norm → head → top-k and the target's rank. */
function buildLensGraph(def: FamilyDef, c: ModelConfig, weights: (name: string) => GraphWeight): Uint8Array {
  const g = new GraphOps(weights);
  const h = g.input('rows', 'float32', ['M', c.n_embd]);
  const targets = g.input('targets', 'int32', ['M']);
  const logits = applyHead(g, def.head(c), def.lensNorm(g, c, h));
  const p = lensPredictions(g, logits, targets, MAX_TOP_K);
  return g.build([{ sym: p.nll, name: 'nll' }, { sym: p.topIds, name: 'top_ids' }, { sym: p.topProbs, name: 'top_probs' }, { sym: p.rank, name: 'rank' }], PRODUCER, '1');
}

/** The scoring graph: ids and targets (B, T), the controls (and t per row) → −log p(target) (B, T). */
function buildNllGraph(def: FamilyDef, c: ModelConfig, weights: (name: string) => GraphWeight): Uint8Array {
  const g = new GraphOps(weights);
  const L = def.layerCount(c), H = c.n_head;
  const ids = g.input('ids', 'int32', ['B', 'T']);
  const positions = g.input('positions', 'int32', ['T']);
  const targets = g.input('targets', 'int32', ['B', 'T']);
  const controls = { headScale: g.input('head_scale', 'float32', [L, H]), headMean: g.input('head_mean', 'float32', [L, H]), adaptiveOff: g.input('adaptive_off', 'float32', [L, H]) };
  const t = def.objective(c) === 'diffusion' ? g.input('t', 'int32', ['B']) : undefined;
  const prog = def.program(g, c, { ids, positions, t, controls });
  for (let l = 0; l < prog.layers; l++) prog.step(l);
  const logits = applyHead(g, def.head(c), prog.final()); // (B, T, V)
  return g.build([{ sym: predictionsNll(g, logits, targets), name: 'nll' }], PRODUCER, '1');
}

/** The `headlens forward` graph: full logits and every layer's reference tensors. */
function buildForwardGraph(def: FamilyDef, c: ModelConfig, weights: (name: string) => GraphWeight): { bytes: Uint8Array; names: string[] } {
  const g = new GraphOps(weights);
  const diffusion = def.objective(c) === 'diffusion';
  const ids = g.input('ids', 'int32', ['B', 'T']);
  const positions = g.input('positions', 'int32', ['T']);
  const t = diffusion ? g.input('t', 'int32', ['B']) : undefined;
  const prog = def.program(g, c, { ids, positions, t });
  const outputs: GraphOutput[] = [];
  for (let l = 0; l < prog.layers; l++) {
    const out = prog.step(l);
    const skip = new Set(out.notForwarded ?? []);
    if (!skip.has('hidden')) outputs.push({ sym: out.hidden, name: `hidden.${l}` });
    if (!skip.has('attn')) outputs.push({ sym: out.attn, name: `attn.${l}` });
    for (const [k, v] of Object.entries(out.extras ?? {})) outputs.push({ sym: v, name: k });
  }
  outputs.push({ sym: applyHead(g, def.head(c), prog.final()), name: 'logits' });
  return { bytes: g.build(outputs, PRODUCER, '1'), names: outputs.map((o) => o.name) };
}

export class OrtRunner implements InferenceRuntime {
  readonly name: string;
  readonly device: DeviceInfo;
  private forwardSession: OrtSession | null = null;
  private lensSession: OrtSession | null = null;
  private nllSession: OrtSession | null = null;

  private constructor(
    private readonly def: FamilyDef,
    private readonly config: ModelConfig,
    private readonly weights: (name: string) => GraphWeight,
    private readonly graph: AnalysisGraph,
    private readonly session: OrtSession,
    private readonly choice: OrtChoice,
  ) {
    this.name = `onnx-${choice.provider}`;
    this.device = choice.device;
  }

  /** Traces the family and creates its session (the slow part of a model load, once). */
  static async create(def: FamilyDef, config: ModelConfig, weights: Map<string, HostTensor>, choice: OrtChoice): Promise<OrtRunner> {
    const stored = storedWeights(def.parameters(config), weights);
    const graph = buildAnalysisGraph(def, config, stored);
    const session = await createSession(graph.bytes, choice, `${config.family}-analysis`);
    graph.bytes = new Uint8Array(0); // onnxruntime holds its own copy
    return new OrtRunner(def, config, stored, graph, session, choice);
  }

  private feeds(ids: Int32Array, targets: Int32Array, headIndex: Int32Array, auditIndex: Int32Array, req: WindowRequest): Record<string, OrtTensor> {
    const T = ids.length, { layers: L, heads: H } = this.graph;
    const want = new Uint8Array(L);
    for (let l = 0; l < L; l++) want[l] = req.attention(l) ? 1 : 0;
    const c = req.controls;
    const feeds: Record<string, OrtTensor> = {
      ids: ortTensor('int32', ids, [1, T]),
      positions: ortTensor('int32', Int32Array.from({ length: T }, (_, i) => i), [T]),
      targets: ortTensor('int32', targets.map((v) => Math.max(0, v)), [1, T]),
      head_index: ortTensor('int32', headIndex, [headIndex.length]),
      audit_index: ortTensor('int32', auditIndex, [auditIndex.length]),
      want_attn: ortTensor('bool', want, [L]),
      head_scale: ortTensor('float32', c?.headScale ?? new Float32Array(L * H).fill(1), [L, H]),
      head_mean: ortTensor('float32', c?.headMean ?? new Float32Array(L * H), [L, H]),
      adaptive_off: ortTensor('float32', c?.adaptiveOff ?? new Float32Array(L * H), [L, H]),
    };
    if (this.graph.diffusion) feeds.t = ortTensor('int32', new Int32Array([req.t ?? 0]), [1]);
    return feeds;
  }

  private async run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>> {
    try {
      return await this.session.run(feeds);
    } catch (e) {
      throw new DeviceError(`onnxruntime (${this.name}) failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  async *analyzeWindow(req: WindowRequest, token?: CancelToken): AsyncGenerator<WindowLayer, WindowOutput> {
    const T = req.ids.length, K = Math.min(req.topK, MAX_TOP_K);
    const all = Int32Array.from({ length: T }, (_, i) => i);
    const audit = Int32Array.from(req.audit.filter((p) => p < T - 1));
    const out = await this.run(this.feeds(req.ids, req.targets, all, audit, req));
    for (let l = 0; l < this.graph.layers; l++) {
      throwIfCancelled(token);
      yield this.layerOf(out, l, !!req.residuals);
    }
    const nll = Float32Array.from(out.nll.data as Float32Array);
    req.targets.forEach((v, i) => {
      if (v < 0) nll[i] = NaN;
    });
    const result: WindowOutput = { nll, topIds: firstK(out.top_ids.data as Int32Array, MAX_TOP_K, K), topProbs: firstK(out.top_probs.data as Float32Array, MAX_TOP_K, K) };
    if (req.audit.length) result.leak = await this.leak(req, out.audit_logits.data as Float32Array, audit, token);
    return result;
  }

  private layerOf(out: Record<string, OrtTensor>, l: number, residual: boolean): WindowLayer {
    const get = (k: string) => out[`L${l}.${k}`];
    const attn = get('attn');
    const w: WindowLayer = {
      layer: l,
      headMax: get('headMax').data as Float32Array,
      headArgmax: get('headArgmax').data as Int32Array,
      headEntropy: get('headEntropy').data as Float32Array,
      headDistance: get('headDistance').data as Float32Array,
      latentKey: get('latentKey').data as Int32Array,
      latentCode: get('latentCode').data as Float32Array,
      signals: {},
    };
    if (attn.dims.length && attn.data.length) w.attn = { half: attn.data as Uint16Array };
    if (residual) w.residual = get('residual').data as Float32Array;
    for (const name of this.graph.signals[l]) {
      const s = get(`signal.${name}`);
      w.signals[name] = { values: s.data as Float32Array, shape: s.dims.slice(1) };
    }
    return w;
  }

  /** Each audited prefix: the same session on ids[0..p], the head on row p only. */
  private async leak(req: WindowRequest, full: Float32Array, audit: Int32Array, token?: CancelToken): Promise<Float32Array> {
    const T = req.ids.length, V = this.config.vocab_size;
    const leak = new Float32Array(T).fill(NaN);
    leak[T - 1] = 0;
    for (let a = 0; a < audit.length; a++) {
      throwIfCancelled(token);
      const p = audit[a];
      const o = await this.run(this.feeds(req.ids.subarray(0, p + 1), req.targets.subarray(0, p + 1), Int32Array.of(p), Int32Array.of(0), { ...req, attention: () => false }));
      const row = o.audit_logits.data as Float32Array;
      let max = 0;
      for (let v = 0; v < V; v++) max = Math.max(max, Math.abs(row[v] - full[a * V + v]));
      leak[p] = max;
    }
    return leak;
  }

  async nll(req: NllRequest, token?: CancelToken): Promise<Float32Array> {
    throwIfCancelled(token);
    this.nllSession ??= await createSession(buildNllGraph(this.def, this.config, this.weights), this.choice, `${this.config.family}-nll`);
    const { B, T } = req, { layers: L, heads: H } = this.graph, c = req.controls;
    const feeds: Record<string, OrtTensor> = {
      ids: ortTensor('int32', req.ids, [B, T]),
      positions: ortTensor('int32', Int32Array.from({ length: T }, (_, i) => i), [T]),
      targets: ortTensor('int32', req.targets.map((v) => Math.max(0, v)), [B, T]),
      head_scale: ortTensor('float32', c?.headScale ?? new Float32Array(L * H).fill(1), [L, H]),
      head_mean: ortTensor('float32', c?.headMean ?? new Float32Array(L * H), [L, H]),
      adaptive_off: ortTensor('float32', c?.adaptiveOff ?? new Float32Array(L * H), [L, H]),
    };
    if (this.graph.diffusion) feeds.t = ortTensor('int32', new Int32Array(B).fill(req.t ?? 0), [B]);
    const out = await this.nllSession.run(feeds).catch((e: Error) => {
      throw new DeviceError(`onnxruntime (${this.name}) failed: ${e.message.split('\n')[0]}`);
    });
    const nll = Float32Array.from(out.nll.data as Float32Array);
    req.targets.forEach((v, i) => {
      if (v < 0) nll[i] = NaN;
    });
    return nll;
  }

  async lens(rows: Float32Array, M: number, targets: Int32Array, topK: number): Promise<LensOutput> {
    this.lensSession ??= await createSession(buildLensGraph(this.def, this.config, this.weights), this.choice, `${this.config.family}-lens`);
    const out = await this.lensSession.run({ rows: ortTensor('float32', rows, [M, this.config.n_embd]), targets: ortTensor('int32', targets.map((v) => Math.max(0, v)), [M]) }).catch((e: Error) => {
      throw new DeviceError(`onnxruntime (${this.name}) failed: ${e.message.split('\n')[0]}`);
    });
    const K = Math.min(topK, MAX_TOP_K);
    return { topIds: firstK(out.top_ids.data as Int32Array, MAX_TOP_K, K), topProbs: firstK(out.top_probs.data as Float32Array, MAX_TOP_K, K), nll: out.nll.data as Float32Array, rank: out.rank.data as Int32Array };
  }

  async forwardTensors(ids: Int32Array, B: number, T: number, t?: Int32Array): Promise<Map<string, HostTensor>> {
    if (!this.forwardSession) {
      const { bytes } = buildForwardGraph(this.def, this.config, this.weights);
      this.forwardSession = await createSession(bytes, this.choice, `${this.config.family}-forward`);
    }
    const feeds: Record<string, OrtTensor> = {
      ids: ortTensor('int32', ids, [B, T]),
      positions: ortTensor('int32', Int32Array.from({ length: T }, (_, i) => i), [T]),
    };
    if (this.def.objective(this.config) === 'diffusion') feeds.t = ortTensor('int32', t ?? new Int32Array(B), [B]);
    const out = await this.forwardSession.run(feeds);
    const result = new Map<string, HostTensor>();
    for (const [name, v] of Object.entries(out)) result.set(name, { shape: [...v.dims], dtype: 'float32', values: v.data as Float32Array });
    return result;
  }

  async dispose(): Promise<void> {
    await this.session.release();
    await this.forwardSession?.release();
    await this.lensSession?.release();
    await this.nllSession?.release();
  }
}

/** (N, Kmax) → (N, K). */
function firstK<A extends Float32Array | Int32Array>(a: A, kMax: number, k: number): A {
  if (k === kMax) return a;
  const n = a.length / kMax;
  const out = new (a.constructor as new (n: number) => A)(n * k);
  for (let i = 0; i < n; i++) out.set(a.subarray(i * kMax, i * kMax + k), i * k);
  return out;
}

export type { Sym };
