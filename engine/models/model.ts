/**
 * One model object for every family: parameters (PyTorch names; nn.Linear weights held transposed,
 * [in, out], so every product is an untransposed 2-D matMul), the forward pass layer by layer, the
 * chunked loss, and conversion to and from PyTorch-layout state dicts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../protocol';
import type { HostTensor } from '../io/tensor';
import type { Batch, LayerInternals, ModelApi } from './types';
import { BadInputError } from '../errors';
import { isDiffusion, isLinearWeight, parameterList, headDim, checkShapes } from './config';
import { causalMask, chunkedHeadLoss, chunkedHeadLossNoGrad, embed, linear, ropeTables, type RopeTables } from './ops';
import type { HyperParams, HyperResult } from './hyper';
import { loraMetrics } from './hyper';
import { blockCausal, embedCausal, finalNormCausal } from './gpt';
import { blockDiffusion, embedDiffusion, finalNormDiffusion } from './diffusion';
import { initialWeights } from './init';

/** What a family's block function needs from the model. */
export interface BlockContext {
  param(name: string): tf.Tensor;
  embed(name: string, ids: tf.Tensor): tf.Tensor;
  rope: RopeTables;
  /** Additive causal mask (T, T) for causal families, null for bidirectional ones. */
  mask(T: number): tf.Tensor2D | null;
  hyperParams(attnPrefix: string): HyperParams;
}

export interface BlockOutput {
  x: tf.Tensor3D; // (B, T, C) residual stream after the block
  probs: tf.Tensor4D | null; // (B, H, T, T) when internals were asked for
  hyper: HyperResult | null;
  v0: tf.Tensor4D; // (B, H, T, D) values before the dynamic update
}

export interface ForwardOptions {
  t?: tf.Tensor1D;
  internals?: boolean;
}

export class Model implements ModelApi {
  readonly params = new Map<string, tf.Variable>();
  private readonly rope: RopeTables;
  private readonly masks = new Map<number, tf.Tensor2D>();
  private readonly ctx: BlockContext;
  private readonly diffusion: boolean;

  constructor(readonly config: ModelConfig, weights: Map<string, HostTensor>, readonly source = '') {
    checkShapes(config, new Map([...weights].map(([k, v]) => [k, v.shape])), source || 'weights');
    for (const [name, shape] of parameterList(config)) {
      const w = weights.get(name)!;
      if (w.dtype !== 'float32') throw new BadInputError(`${source}: tensor '${name}' is ${w.dtype}, expected a float tensor`);
      const t = tf.tidy(() => {
        const raw = tf.tensor(w.values, shape, 'float32');
        return isLinearWeight(name, shape) ? tf.transpose(raw) : raw;
      });
      this.params.set(name, tf.variable(t, true)); // unnamed: tfjs variable names are process-global
      t.dispose();
    }
    this.diffusion = isDiffusion(config.family);
    this.rope = ropeTables(config.block_size, headDim(config));
    this.ctx = {
      param: (n) => this.p(n),
      embed: (n, ids) => embed(this.p(n) as tf.Tensor2D, ids),
      rope: this.rope,
      mask: (T) => (this.diffusion ? null : this.maskOf(T)),
      hyperParams: (prefix) => this.hyperParams(prefix),
    };
  }

  /** A fresh model with a-gpt's initialisation (seeded). */
  static init(config: ModelConfig, seed = 1337): Model {
    return new Model(config, initialWeights(config, seed), 'init');
  }

  parameterNames(): string[] {
    return parameterList(this.config).map(([n]) => n);
  }

  paramCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  private p(name: string): tf.Tensor {
    const v = this.params.get(name);
    if (!v) throw new Error(`no parameter '${name}' in this ${this.config.family} model`);
    return v;
  }

  private maskOf(T: number): tf.Tensor2D {
    let m = this.masks.get(T);
    if (!m) {
      m = tf.keep(causalMask(T));
      this.masks.set(T, m);
    }
    return m;
  }

  private hyperParams(prefix: string): HyperParams {
    const hc = this.config.hyper!;
    const heads = [...Array(this.config.n_head).keys()];
    const layers = [...Array(hc.n_layers).keys()];
    const q = (h: number, n: string) => this.p(`${prefix}.hyper_v.${h}.${n}`);
    return {
      inProj: layers.map((j) => heads.map((h) => q(h, `layers.${j}.in_proj_weight`) as tf.Tensor2D)),
      inBias: layers.map((j) => heads.map((h) => q(h, `layers.${j}.in_proj_bias`) as tf.Tensor1D)),
      outProj: layers.map((j) => heads.map((h) => q(h, `layers.${j}.out_proj.weight`) as tf.Tensor2D)),
      outBias: layers.map((j) => heads.map((h) => q(h, `layers.${j}.out_proj.bias`) as tf.Tensor1D)),
      toA: heads.map((h) => q(h, 'to_A.weight') as tf.Tensor2D),
      toB: heads.map((h) => q(h, 'to_B.weight') as tf.Tensor2D),
    };
  }

  private checkIds(ids: tf.Tensor2D): void {
    const T = ids.shape[1];
    if (T > this.config.block_size) throw new BadInputError(`sequence of ${T} tokens is longer than the model's block size ${this.config.block_size}`);
    if (T === 0) throw new BadInputError('empty sequence: nothing to run the model on');
  }

  /** The embedded input (B, T, C). */
  embedInput(ids: tf.Tensor2D, t?: tf.Tensor1D): tf.Tensor3D {
    this.checkIds(ids);
    return this.diffusion ? embedDiffusion(this.ctx, ids, t, this.config) : embedCausal(this.ctx, ids);
  }

  /** Run block l on x. Caller owns memory (use inside tf.tidy). */
  block(x: tf.Tensor3D, l: number, internals: boolean): BlockOutput {
    return (this.diffusion ? blockDiffusion : blockCausal)(this.ctx, x, l, this.config, internals);
  }

  finalNorm(x: tf.Tensor3D): tf.Tensor3D {
    return (this.diffusion ? finalNormDiffusion : finalNormCausal)(this.ctx, x);
  }

  /** Final hidden state after the last norm, (B, T, C). */
  finalHidden(ids: tf.Tensor2D, t?: tf.Tensor1D): tf.Tensor3D {
    let x = this.embedInput(ids, t);
    for (let l = 0; l < this.config.n_layer; l++) x = this.block(x, l, false).x;
    return this.finalNorm(x);
  }

  /** Output head on hidden states (…, C) → (…, V). */
  head(h: tf.Tensor): tf.Tensor {
    return linear(h, this.p('lm_head.weight'));
  }

  logits(ids: tf.Tensor2D, t?: tf.Tensor1D): tf.Tensor3D {
    return tf.tidy(() => this.head(this.finalHidden(ids, t)) as tf.Tensor3D);
  }

  /** Full forward with every layer's internals (for `headlens forward` and parity tests). */
  forwardWithInternals(ids: tf.Tensor2D, t?: tf.Tensor1D): { logits: tf.Tensor3D; layers: LayerInternals[] } {
    return tf.tidy(() => {
      let x = this.embedInput(ids, t);
      const layers: LayerInternals[] = [];
      for (let l = 0; l < this.config.n_layer; l++) {
        const out = this.block(x, l, true);
        x = out.x;
        layers.push(this.internalsOf(l, out));
      }
      const logits = this.head(this.finalNorm(x)) as tf.Tensor3D;
      return { logits, layers } as never;
    }) as unknown as { logits: tf.Tensor3D; layers: LayerInternals[] };
  }

  internalsOf(l: number, out: BlockOutput): LayerInternals {
    const li: LayerInternals = { layer: l, attn: out.probs!, hidden: out.x };
    if (out.hyper) {
      const m = loraMetrics(out.hyper, out.v0);
      Object.assign(li, { loraA: out.hyper.A, loraB: out.hyper.B, loraFro: m.loraFro, loraTok: m.loraTok, vNorm: m.vNorm });
    }
    return li;
  }

  /** Per-position loss weights: 1/N (causal) or mask/max(Σmask, 1) (diffusion, a-gpt's masked mean). */
  private lossWeights(batch: Batch): tf.Tensor1D {
    if (batch.weights) return batch.weights;
    const [B, T] = batch.inputIds.shape;
    if (!batch.mask) return tf.fill([B * T], 1 / (B * T)) as tf.Tensor1D;
    const m = batch.mask.reshape([-1]).toFloat();
    return tf.div(m, tf.maximum(tf.sum(m), 1)) as tf.Tensor1D;
  }

  loss(batch: Batch, opts: { withGrad?: boolean } = {}): tf.Scalar {
    return tf.tidy(() => {
      const h = this.finalHidden(batch.inputIds, batch.t);
      const C = h.shape[2];
      const h2 = h.reshape([-1, C]) as tf.Tensor2D;
      const targets = batch.targets.reshape([-1]).toInt() as tf.Tensor1D;
      const w = this.lossWeights(batch);
      const head = this.p('lm_head.weight') as tf.Tensor2D;
      return opts.withGrad === false ? chunkedHeadLossNoGrad(h2, head, targets, w) : chunkedHeadLoss(h2, head, targets, w);
    });
  }

  /** Weights in PyTorch layout (Linear weights transposed back), in parameters() order. */
  async toStateDict(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [name, shape] of parameterList(this.config)) {
      const v = this.p(name);
      const t = isLinearWeight(name, shape) ? tf.transpose(v) : v;
      const values = (await t.data()) as Float32Array;
      if (t !== v) t.dispose();
      out.set(name, { shape, dtype: 'float32', values: new Float32Array(values) });
    }
    return out;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
    this.rope.cos.dispose();
    this.rope.sin.dispose();
    this.rope.rot.dispose();
  }
}
