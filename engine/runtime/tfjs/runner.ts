/**
 * The analysis runtime on TensorFlow.js (the fallback when onnxruntime is not there): the family's
 * program one layer at a time inside tf.tidy, the shared summaries reduced on the backend, small
 * arrays read back with `await data()` (dataSync throws on WebGPU). The output head runs in row
 * chunks so that (T, V) logits never exist at once.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DeviceInfo } from '../../protocol';
import type { HostTensor } from '../../io/tensor';
import { throwIfCancelled, type CancelToken } from '../../errors';
import type { Controls, LayerOut, Program } from '../../models/family';
import { distanceMatrix } from '../../models/layers';
import { layerSummaries, lensPredictions, predictions, predictionsNll } from '../../analysis/summaries';
import type { InferenceRuntime, HostControls, LensOutput, NllRequest, WindowLayer, WindowOutput, WindowRequest } from '../runner';
import { MAX_TOP_K } from '../runner';
import type { TfModel } from './model';
import { headChunkRows } from './kernels';

export class TfRunner implements InferenceRuntime {
  constructor(readonly model: TfModel, readonly name: string, readonly device: DeviceInfo) {}

  private controls(c: HostControls | undefined, L: number, H: number): Controls<tf.Tensor> | undefined {
    if (!c) return undefined;
    return { headScale: tf.tensor2d(c.headScale, [L, H]), headMean: tf.tensor2d(c.headMean, [L, H]), adaptiveOff: tf.tensor2d(c.adaptiveOff, [L, H]) };
  }

  async *analyzeWindow(req: WindowRequest, token?: CancelToken): AsyncGenerator<WindowLayer, WindowOutput> {
    const m = this.model, T = req.ids.length;
    const H = m.config.n_head;
    const L = m.def.layerCount(m.config);
    const ids = tf.tensor2d(req.ids, [1, T], 'int32');
    const t = req.t !== undefined ? tf.tensor1d([req.t], 'int32') : undefined;
    const controls = this.controls(req.controls, L, H);
    const keys = tf.range(0, T, 1, 'int32');
    const dist = tf.tidy(() => distanceMatrix(m.ops, keys));
    let prog: Program<tf.Tensor> | null = null;
    let held: tf.Tensor[] = [];
    const keepState = () => {
      const now = prog!.state();
      for (const x of now) tf.keep(x);
      const next = new Set(now);
      for (const x of held) if (!next.has(x)) x.dispose();
      held = now;
    };
    try {
      tf.tidy(() => {
        prog = m.program(ids, { t, controls });
        keepState();
      });
      for (let l = 0; l < L; l++) {
        throwIfCancelled(token);
        const reads = tf.tidy(() => {
          const out = prog!.step(l);
          keepState();
          return layerReads(m, out, dist, keys, req.attention(l), !!req.residuals);
        });
        try {
          yield await readLayer(l, reads);
        } finally {
          tf.dispose(Object.values(reads));
        }
      }
      const hidden = tf.tidy(() => prog!.final().reshape([T, -1]) as tf.Tensor2D);
      try {
        const out = await this.outputs(hidden, req);
        if (req.audit.length) out.leak = await this.leak(hidden, ids, t, req.audit);
        return out;
      } finally {
        hidden.dispose();
      }
    } finally {
      tf.dispose(held);
      tf.dispose([ids, keys, dist, ...(t ? [t] : []), ...(controls ? Object.values(controls) : [])]);
    }
  }

  /** NLL and top-k of every position, the head in row chunks. */
  private async outputs(hidden: tf.Tensor2D, req: WindowRequest): Promise<WindowOutput> {
    const T = hidden.shape[0], K = Math.min(req.topK, MAX_TOP_K);
    const nll = new Float32Array(T), topIds = new Int32Array(T * K), topProbs = new Float32Array(T * K);
    const rows = headChunkRows(this.model.config.vocab_size);
    for (let r0 = 0; r0 < T; r0 += rows) {
      const n = Math.min(rows, T - r0);
      const p = tf.tidy(() => {
        const logits = this.model.head(hidden.slice([r0, 0], [n, -1]));
        const tgt = tf.tensor1d(Array.from(req.targets.subarray(r0, r0 + n), (v) => Math.max(0, v)), 'int32');
        return { ...predictions(this.model.ops, logits, tgt, K) };
      }) as ReturnType<typeof predictions<tf.Tensor>>;
      try {
        nll.set((await p.nll.data()) as Float32Array, r0);
        topIds.set((await p.topIds.data()) as Int32Array, r0 * K);
        topProbs.set((await p.topProbs.data()) as Float32Array, r0 * K);
      } finally {
        tf.dispose([p.nll, p.topIds, p.topProbs]);
      }
    }
    req.targets.forEach((v, i) => {
      if (v < 0) nll[i] = NaN;
    });
    return { nll, topIds, topProbs };
  }

  /** leak[t] = max |logits_t(window) − logits_t(prefix ending at t)|; each prefix its own forward. */
  private async leak(hidden: tf.Tensor2D, ids: tf.Tensor2D, t: tf.Tensor1D | undefined, positions: number[]): Promise<Float32Array> {
    const T = ids.shape[1];
    const leak = new Float32Array(T).fill(NaN);
    leak[T - 1] = 0;
    for (const p of positions) {
      if (p >= T - 1) continue;
      const d = tf.tidy(() => {
        const h = this.model.finalHidden(ids.slice([0, 0], [1, p + 1]) as tf.Tensor2D, t);
        const prefixRow = h.slice([0, p, 0], [1, 1, -1]).reshape([1, -1]);
        return tf.max(tf.abs(tf.sub(this.model.head(hidden.slice([p, 0], [1, -1])), this.model.head(prefixRow))));
      });
      leak[p] = (await d.data())[0];
      d.dispose();
    }
    return leak;
  }

  async nll(req: NllRequest, token?: CancelToken): Promise<Float32Array> {
    const m = this.model, { B, T } = req;
    const L = m.def.layerCount(m.config), H = m.config.n_head;
    const nll = new Float32Array(B * T);
    const hidden = tf.tidy(() => {
      const controls = this.controls(req.controls, L, H);
      const t = req.t !== undefined ? tf.fill([B], req.t, 'int32') as tf.Tensor1D : undefined;
      const prog = m.program(tf.tensor2d(req.ids, [B, T], 'int32'), { t, controls });
      for (let l = 0; l < prog.layers; l++) prog.step(l);
      return prog.final().reshape([B * T, -1]) as tf.Tensor2D;
    });
    try {
      const rows = headChunkRows(m.config.vocab_size);
      for (let r0 = 0; r0 < B * T; r0 += rows) {
        throwIfCancelled(token);
        const n = Math.min(rows, B * T - r0);
        const x = tf.tidy(() => {
          const logits = m.head(hidden.slice([r0, 0], [n, -1]));
          const tgt = tf.tensor1d(Array.from(req.targets.subarray(r0, r0 + n), (v) => Math.max(0, v)), 'int32');
          return predictionsNll(m.ops, logits, tgt);
        });
        try {
          nll.set((await x.data()) as Float32Array, r0);
        } finally {
          x.dispose();
        }
      }
    } finally {
      hidden.dispose();
    }
    req.targets.forEach((v, i) => {
      if (v < 0) nll[i] = NaN;
    });
    return nll;
  }

  async lens(rows: Float32Array, M: number, targets: Int32Array, topK: number): Promise<LensOutput> {
    const m = this.model, C = m.config.n_embd, K = Math.min(topK, MAX_TOP_K);
    const out: LensOutput = { topIds: new Int32Array(M * K), topProbs: new Float32Array(M * K), nll: new Float32Array(M), rank: new Int32Array(M) };
    const chunk = headChunkRows(m.config.vocab_size);
    for (let r0 = 0; r0 < M; r0 += chunk) {
      const n = Math.min(chunk, M - r0);
      const p = tf.tidy(() => {
        const h = tf.tensor2d(rows.subarray(r0 * C, (r0 + n) * C), [n, C]);
        const logits = m.head(m.def.lensNorm(m.ops, m.config, h));
        return { ...lensPredictions(m.ops, logits, tf.tensor1d(Array.from(targets.subarray(r0, r0 + n), (v) => Math.max(0, v)), 'int32'), K) };
      }) as ReturnType<typeof lensPredictions<tf.Tensor>>;
      try {
        out.topIds.set((await p.topIds.data()) as Int32Array, r0 * K);
        out.topProbs.set((await p.topProbs.data()) as Float32Array, r0 * K);
        out.nll.set((await p.nll.data()) as Float32Array, r0);
        out.rank.set((await p.rank.data()) as Int32Array, r0);
      } finally {
        tf.dispose([p.topIds, p.topProbs, p.nll, p.rank]);
      }
    }
    return out;
  }

  async forwardTensors(idsFlat: Int32Array, B: number, T: number, tFlat?: Int32Array): Promise<Map<string, HostTensor>> {
    const ids = tf.tensor2d(idsFlat, [B, T], 'int32');
    const t = tFlat ? tf.tensor1d(tFlat, 'int32') : undefined;
    const { logits, layers } = this.model.forwardWithInternals(ids, t);
    const out = new Map<string, HostTensor>();
    const put = async (n: string, x: tf.Tensor) => out.set(n, { shape: x.shape, dtype: 'float32', values: Float32Array.from(await x.data()) });
    try {
      await put('logits', logits);
      for (const [l, L] of layers.entries()) {
        const skip = new Set(L.notForwarded ?? []);
        if (!skip.has('hidden')) await put(`hidden.${l}`, L.hidden);
        if (!skip.has('attn')) await put(`attn.${l}`, L.attn);
        for (const [name, x] of Object.entries(L.extras ?? {})) await put(name, x);
      }
    } finally {
      tf.dispose([ids, logits, ...(t ? [t] : []), ...layers.flatMap(layerTensors)]);
    }
    return out;
  }

  async dispose(): Promise<void> {
    this.model.dispose();
  }
}

function layerTensors(L: LayerOut<tf.Tensor>): tf.Tensor[] {
  return [L.attn, L.hidden, ...Object.values(L.signals), ...Object.values(L.extras ?? {})];
}

type Reads = Record<string, tf.Tensor>;

/** Everything one layer reports, reduced on the backend and kept past the tidy. */
function layerReads(m: TfModel, out: LayerOut<tf.Tensor>, dist: tf.Tensor, keys: tf.Tensor, withAttn: boolean, withResidual: boolean): Reads {
  const s = layerSummaries(m.ops, out.attn, dist, keys);
  const reads: Reads = {
    headMax: s.headMax.squeeze([0]),
    headArgmax: s.headArgmax.squeeze([0]),
    headEntropy: s.headEntropy.squeeze([0]),
    headDistance: s.headDistance.squeeze([0]),
    latentKey: s.latentKey.squeeze([0]),
    latentCode: s.latentCode.squeeze([0]),
  };
  if (withAttn) reads.attn = out.attn.squeeze([0]);
  if (withResidual) reads.residual = out.hidden.squeeze([0]);
  for (const [name, x] of Object.entries(out.signals)) reads[`signal:${name}`] = x.squeeze([0]);
  for (const x of Object.values(reads)) tf.keep(x);
  return reads;
}

async function readLayer(layer: number, r: Reads): Promise<WindowLayer> {
  const f = async (t: tf.Tensor) => Float32Array.from(await t.data());
  const i = async (t: tf.Tensor) => Int32Array.from(await t.data());
  const w: WindowLayer = {
    layer,
    headMax: await f(r.headMax),
    headArgmax: await i(r.headArgmax),
    headEntropy: await f(r.headEntropy),
    headDistance: await f(r.headDistance),
    latentKey: await i(r.latentKey),
    latentCode: await f(r.latentCode),
    signals: {},
  };
  if (r.attn) w.attn = { float: await f(r.attn) };
  if (r.residual) w.residual = await f(r.residual);
  for (const [k, x] of Object.entries(r)) {
    if (k.startsWith('signal:')) w.signals[k.slice(7)] = { values: await f(x), shape: x.shape };
  }
  return w;
}
