/**
 * The HYLA knobs (engine/models/knobs.ts `mixHeads`) against ../shared/fixtures/methods `tiny-hyla`
 * (a line-by-line port of smonsays/hypernetwork-attention, see its README): one attention layer,
 * q/k/v from their DenseGeneral kernels [E, H, d] computed here with our ops, then our mixer, then
 * their `out` kernel. Every variant {hyla, softmax} × {causal, full} × {nobias, relpos}: the output
 * y, the latent codes and (HYLA) the value network's hidden layer, on TensorFlow.js and on an ONNX
 * graph run by onnxruntime. The query-chunked hidden layer (free sequence length, chunks past the
 * end) gives the same y, a windowed causal mask reads only the visible keys, and hylaActive is the
 * fraction of positive hidden units at k* computed from the fixture's own tensors.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors } from '../engine/io/safetensors';
import type { HostTensor } from '../engine/io/tensor';
import type { Ops } from '../engine/models/ops';
import { causalKeep } from '../engine/models/layers';
import { mixHeads, type AttentionNorm, type ValueNet, type ScoreMask } from '../engine/models/knobs';
import { initBackend, type TfjsChoice } from '../engine/runtime/tfjs/backend';
import { TfOps } from '../engine/runtime/tfjs/ops';
import { GraphOps, type Sym } from '../engine/runtime/onnx/builder';
import { createSession, ortTensor, type OrtProvider } from '../engine/runtime/onnx/ort';
import { SHARED_FIXTURES, assertClose, testBackends } from './helpers/fixtures';

const DIR = path.join(SHARED_FIXTURES, 'methods');
const model = readSafetensors(path.join(DIR, 'tiny-hyla.model.safetensors')).tensors;
const ex = readSafetensors(path.join(DIR, 'tiny-hyla.expected.safetensors')).tensors;
const [B, T, E] = ex.get('x')!.shape;
const [, H, dk] = model.get('query.kernel')!.shape;
const dv = model.get('value.kernel')!.shape[2];

interface Variant {
  mixer: 'hyla' | 'softmax';
  mask: 'causal' | 'full';
  bias: 'nobias' | 'relpos';
}
const VARIANTS: Variant[] = (['hyla', 'softmax'] as const).flatMap((mixer) => (['causal', 'full'] as const).flatMap((mask) => (['nobias', 'relpos'] as const).map((bias) => ({ mixer, mask, bias }))));
const nameOf = (v: Variant) => `${v.mixer}.${v.mask}.${v.bias}`;

interface LayerOptions {
  /** Floats per hidden-layer chunk (small: many chunks). */
  budget?: number;
  /** The longest sequence (chunk count when T is free). */
  maxLen?: number;
  /** A causal left window on top of the causal mask; the chunks then read only visible keys. */
  window?: number;
  /** Chunks read every key, whatever the mask. */
  unrestricted?: boolean;
  wantHidden?: boolean;
}

/** Their MultiHeadDotProductAttention layer with our mixer: DenseGeneral q/k/v, mixHeads, DenseGeneral out. */
function hylaLayer<T>(o: Ops<T>, x: T, positions: T, v: Variant, opt: LayerOptions): Record<string, T> {
  const dense = (name: string, d: number) => {
    const y = o.add(o.matmul(x, o.reshape(o.param(`${name}.kernel`), [E, H * d])), o.reshape(o.param(`${name}.bias`), [H * d]));
    return o.transpose(o.reshape(y, [0, 0, H, d]), [0, 2, 1, 3]); // (B, H, T, d)
  };
  let mask: ScoreMask<T> | null = null;
  if (v.mask === 'causal') {
    let keep = o.greater(causalKeep(o, positions), 0); // (T, T) k ≤ q
    if (opt.window !== undefined) keep = o.and(keep, o.lessEqual(o.sub(o.unsqueeze(positions, 1), o.unsqueeze(positions, 0)), opt.window));
    mask = { keep };
  }
  const bias = v.bias === 'relpos' ? o.unsqueeze(o.gather(o.param('relative_embedding.rel_embedding'), bucketsOf(o, positions), 1), 0) : null; // (1, H, T, T)
  const attention: AttentionNorm = v.mixer === 'hyla' ? 'rms_head' : 'softmax';
  const valueNet: ValueNet = v.mixer === 'hyla' ? 'relu' : 'linear';
  const mix = mixHeads(o, dense('query', dk), dense('key', dk), dense('value', dv), mask, {
    attention, valueNet, scale: 1 / Math.sqrt(dk), bias, maxLen: opt.maxLen ?? T,
    causalWindow: v.mask === 'causal' && !opt.unrestricted ? opt.window ?? null : undefined,
    hiddenBudget: opt.budget, wantHidden: opt.wantHidden, wantActive: true,
  });
  const merged = o.reshape(o.transpose(mix.out, [0, 2, 1, 3]), [0, 0, H * dv]); // (B, T, H·dv)
  const out: Record<string, T> = {
    y: o.add(o.matmul(merged, o.reshape(o.param('out.kernel'), [H * dv, E])), o.param('out.bias')),
    latent: o.transpose(mix.attn, [0, 2, 3, 1]), // (B, Tq, Tk, H)
    bias: bias ?? o.constant(new Float32Array(1), [1]),
  };
  if (mix.hidden) out.hidden = mix.hidden;
  if (mix.active) out.active = mix.active;
  return out;
}

/** T5 unidirectional buckets with num_buckets = max_distance = T: q − k for k ≤ q (all exact), 0 for future keys. */
function bucketsOf<T>(o: Ops<T>, positions: T): T {
  const q = o.unsqueeze(positions, 1), k = o.unsqueeze(positions, 0);
  return o.where(o.lessEqual(k, q), o.sub(q, k), 0);
}

type Outputs = Map<string, HostTensor>;

async function runTfjs(backend: string, v: Variant, opt: LayerOptions): Promise<Outputs> {
  await initBackend(backend as TfjsChoice);
  const params = new Map([...model].map(([k, t]) => [k, tf.tensor(t.values, t.shape, 'float32')]));
  const o = new TfOps((n) => params.get(n)!);
  const x = ex.get('x')!;
  const outs = tf.tidy(() => hylaLayer(o, tf.tensor(x.values, x.shape, 'float32'), tf.range(0, T, 1, 'int32'), v, opt));
  const result: Outputs = new Map();
  for (const [k, t] of Object.entries(outs)) result.set(k, { shape: t.shape, dtype: 'float32', values: Float32Array.from(await t.data()) });
  tf.dispose([...Object.values(outs), ...params.values()]);
  return result;
}

async function runOnnx(provider: OrtProvider, v: Variant, opt: LayerOptions): Promise<Outputs> {
  const g = new GraphOps((n) => ({ shape: model.get(n)!.shape, values: model.get(n)!.values as Float32Array }));
  const x = g.input('x', 'float32', ['B', 'T', E]);
  const positions = g.input('positions', 'int32', ['T']);
  const outs = hylaLayer<Sym>(g, x, positions, v, opt);
  const session = await createSession(g.build(Object.entries(outs).map(([name, sym]) => ({ sym, name })), 'headlens-test', '1'), { provider, threads: 1 });
  try {
    const r = await session.run({ x: ortTensor('float32', ex.get('x')!.values as Float32Array, [B, T, E]), positions: ortTensor('int32', Int32Array.from({ length: T }, (_, i) => i), [T]) });
    return new Map(Object.entries(r).map(([k, t]) => [k, { shape: [...t.dims], dtype: 'float32' as const, values: t.data as Float32Array }]));
  } finally {
    await session.release();
  }
}

const run = (backend: string, v: Variant, opt: LayerOptions = {}) => (backend.startsWith('onnx-') ? runOnnx(backend.slice(5) as OrtProvider, v, opt) : runTfjs(backend, v, opt));

/** hylaActive from the fixture alone: k* = argmax_k mean_h latent, then the share of hidden units > 0 at (t, k*). */
function expectedActive(name: string): Float32Array {
  const latent = ex.get(`${name}.latent`)!.values, hidden = ex.get(`${name}.hidden`)!.values;
  const out = new Float32Array(B * H * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      let best = -Infinity, kStar = 0;
      for (let k = 0; k < T; k++) {
        let m = 0;
        for (let h = 0; h < H; h++) m += latent[((b * T + t) * T + k) * H + h];
        if (m / H > best) (best = m / H), (kStar = k);
      }
      let on = 0;
      for (let d = 0; d < dv; d++) if (hidden[((b * T + t) * T + kStar) * dv + d] > 0) on++;
      for (let h = 0; h < H; h++) out[(b * H + h) * T + t] = on / dv;
    }
  }
  return out;
}

for (const backend of testBackends()) {
  describe(`HYLA knobs against tiny-hyla on ${backend}`, () => {
    for (const v of VARIANTS) {
      const name = nameOf(v);
      test(`${name}: y, latent codes${v.mixer === 'hyla' ? ', hidden layer and hylaActive' : ''}`, async () => {
        const got = await run(backend, v, { wantHidden: v.mixer === 'hyla' });
        assertClose(got.get('y')!, ex.get(`${name}.y`)!, { rel: 1e-3 }, `${name}.y`);
        assertClose(got.get('latent')!, ex.get(`${name}.latent`)!, { abs: 1e-4 }, `${name}.latent`);
        if (v.bias === 'relpos') assertClose(got.get('bias')!, ex.get('attn_bias')!, { abs: 0 }, 'relative-position bias');
        if (v.mixer === 'hyla') {
          assertClose(got.get('hidden')!, ex.get(`${name}.hidden`)!, { rel: 1e-3 }, `${name}.hidden`);
          assertClose(got.get('active')!, { shape: [B, H, T], dtype: 'float32', values: expectedActive(name) }, { abs: 1e-6 }, `${name} hylaActive`);
        } else assert.ok(!got.has('hidden'));
      });
      if (v.mixer === 'hyla') {
        test(`${name}: the value network in query chunks (free length, chunks past the end) gives the same y`, async () => {
          // 288 floats = 4 rows of 12 keys × 6 units; with maxLen 16 (T free on ONNX) 3-row chunks, the last ones empty
          for (const opt of [{ budget: 1 }, { budget: 288, maxLen: 16 }]) {
            const got = await run(backend, v, opt);
            assertClose(got.get('y')!, ex.get(`${name}.y`)!, { rel: 1e-3 }, `${name}.y chunked ${JSON.stringify(opt)}`);
          }
        });
      }
    }

    test('a windowed causal mask: chunks that read only their visible keys equal chunks that read every key', async () => {
      const v: Variant = { mixer: 'hyla', mask: 'causal', bias: 'relpos' };
      const all = await run(backend, v, { window: 3, unrestricted: true });
      const chunked = await run(backend, v, { window: 3, budget: 1 });
      const mid = await run(backend, v, { window: 3, budget: 100, maxLen: 16 });
      assertClose(chunked.get('y')!, all.get('y')!, { abs: 1e-5 }, 'window 3, 1-row chunks');
      assertClose(mid.get('y')!, all.get('y')!, { abs: 1e-5 }, 'window 3, 2-row chunks');
      const full = await run(backend, v, {});
      assert.ok(full.get('y')!.values.some((x, i) => Math.abs(x - all.get('y')!.values[i]) > 1e-3), 'the window should change y');
    });
  });
}

test('the fixture mask and buckets are what the test graph builds', async () => {
  const o = new TfOps(() => {
    throw new Error('no params');
  });
  await initBackend('cpu');
  const pos = tf.range(0, T, 1, 'int32');
  const keep = tf.tidy(() => causalKeep(o, pos));
  const buckets = tf.tidy(() => bucketsOf(o, pos));
  const mask = ex.get('mask_causal')!;
  const k = await keep.data();
  for (let i = 0; i < mask.values.length; i++) assert.equal(k[i % (T * T)], mask.values[i], `mask ${i}`);
  assert.deepEqual(Array.from(await buckets.data()), Array.from(ex.get('rp_bucket')!.values));
  tf.dispose([pos, keep, buckets]);
});
