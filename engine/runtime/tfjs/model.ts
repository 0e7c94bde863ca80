/**
 * A model on TensorFlow.js: the family's parameters as variables (PyTorch names; nn.Linear weights
 * held transposed, [in, out], and banks of them per matrix, [N, in, out], so every product is an
 * untransposed 2-D matMul), the family's program
 * run through TfOps, the chunked loss for training, and conversion to and from PyTorch-layout
 * state dicts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../../protocol';
import type { HostTensor } from '../../io/tensor';
import { BadInputError } from '../../errors';
import type { FamilyDef, ForwardInputs, HeadSpec, LayerOut, ParamSpec, Program } from '../../models/family';
import { applyHead, storedPermutation } from '../../models/family';
import { checkShapes, familyDef } from '../../models/registry';
import { TfOps } from './ops';
import { chunkedHeadLoss, chunkedHeadLossNoGrad } from './kernels';

/** One training/eval batch. Causal: targets = next ids. Diffusion: targets = clean ids, mask = where the loss counts. */
export interface Batch {
  inputIds: tf.Tensor2D; // (B, T) int32
  targets: tf.Tensor2D; // (B, T) int32
  mask?: tf.Tensor2D; // (B, T) float32, diffusion only
  t?: tf.Tensor1D; // (B) int32, diffusion only
  /** Per-position loss weights (B·T), summing to this micro-batch's share of the full batch. */
  weights?: tf.Tensor1D;
}

export class TfModel {
  readonly params = new Map<string, tf.Variable>();
  readonly def: FamilyDef;
  readonly specs: ParamSpec[];
  readonly ops: TfOps;
  private readonly headSpec: HeadSpec;

  constructor(readonly config: ModelConfig, weights: Map<string, HostTensor>, readonly source = '') {
    this.def = familyDef(config.family);
    this.specs = this.def.parameters(config);
    checkShapes(config, new Map([...weights].map(([k, v]) => [k, v.shape])), source || 'weights');
    for (const spec of this.specs) {
      const w = weights.get(spec.name)!;
      if (w.dtype !== 'float32') throw new BadInputError(`${source}: tensor '${spec.name}' is ${w.dtype}, expected a float tensor`);
      const t = tf.tidy(() => {
        const raw = tf.tensor(w.values, spec.shape, 'float32');
        const perm = storedPermutation(spec);
        return perm ? tf.transpose(raw, perm) : raw;
      });
      this.params.set(spec.name, tf.variable(t, true)); // unnamed: tfjs variable names are process-global
      t.dispose();
    }
    this.headSpec = this.def.head(config);
    this.ops = new TfOps((n) => this.p(n));
  }

  /** A fresh model with the family's own initialisation (seeded). */
  static init(config: ModelConfig, seed = 1337): TfModel {
    return new TfModel(config, familyDef(config.family).init(config, seed), 'init');
  }

  parameterNames(): string[] {
    return this.specs.map((p) => p.name);
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

  private checkIds(ids: tf.Tensor2D): void {
    const T = ids.shape[1];
    if (T > this.config.block_size) throw new BadInputError(`sequence of ${T} tokens is longer than the model's block size ${this.config.block_size}`);
    if (T === 0) throw new BadInputError('empty sequence: nothing to run the model on');
  }

  /** The family's program on ids (B, T); the caller owns the memory (tidy, or keep its state). */
  program(ids: tf.Tensor2D, extra: Omit<ForwardInputs<tf.Tensor>, 'ids' | 'positions'> = {}): Program<tf.Tensor> {
    this.checkIds(ids);
    const positions = tf.range(0, ids.shape[1], 1, 'int32');
    const prog = this.def.program(this.ops, this.config, { ids, positions, ...extra });
    // the positions belong to the program's state too: later layers may read them
    return { layers: prog.layers, step: (l) => prog.step(l), final: () => prog.final(), state: () => [...prog.state(), positions] };
  }

  /** Output head on hidden states (…, C) → (…, V). */
  head(h: tf.Tensor): tf.Tensor {
    return applyHead(this.ops, this.headSpec, h);
  }

  /** Final hidden state after the last norm, (B, T, C). */
  finalHidden(ids: tf.Tensor2D, t?: tf.Tensor1D): tf.Tensor3D {
    const prog = this.program(ids, { t });
    for (let l = 0; l < prog.layers; l++) prog.step(l);
    return prog.final() as tf.Tensor3D;
  }

  logits(ids: tf.Tensor2D, t?: tf.Tensor1D): tf.Tensor3D {
    return tf.tidy(() => this.head(this.finalHidden(ids, t)) as tf.Tensor3D);
  }

  /** Full forward with every layer's outputs (for `headlens forward` and parity tests). */
  forwardWithInternals(ids: tf.Tensor2D, t?: tf.Tensor1D): { logits: tf.Tensor3D; layers: LayerOut<tf.Tensor>[] } {
    return tf.tidy(() => {
      const prog = this.program(ids, { t });
      const layers: LayerOut<tf.Tensor>[] = [];
      for (let l = 0; l < prog.layers; l++) layers.push(prog.step(l));
      const logits = this.head(prog.final()) as tf.Tensor3D;
      return { logits, layers } as never;
    }) as unknown as { logits: tf.Tensor3D; layers: LayerOut<tf.Tensor>[] };
  }

  /** Per-position loss weights: 1/N (causal) or mask/max(Σmask, 1) (diffusion, a-gpt's masked mean). */
  private lossWeights(batch: Batch): tf.Tensor1D {
    if (batch.weights) return batch.weights;
    const [B, T] = batch.inputIds.shape;
    if (!batch.mask) return tf.fill([B * T], 1 / (B * T)) as tf.Tensor1D;
    const m = batch.mask.reshape([-1]).toFloat();
    return tf.div(m, tf.maximum(tf.sum(m), 1)) as tf.Tensor1D;
  }

  /** The head weight as the chunked loss wants it: (C, V), transposed from a tied embedding. */
  private headWeight(): tf.Tensor2D {
    const w = this.p(this.headSpec.weight);
    return (this.headSpec.tied ? tf.transpose(w) : w) as tf.Tensor2D;
  }

  /** Mean cross-entropy (diffusion: over mask = 1), never materialising full (B·T, V) logits at once. */
  loss(batch: Batch, opts: { withGrad?: boolean } = {}): tf.Scalar {
    return tf.tidy(() => {
      const h = this.finalHidden(batch.inputIds, batch.t);
      const C = h.shape[2];
      const h2 = h.reshape([-1, C]) as tf.Tensor2D;
      const targets = batch.targets.reshape([-1]).toInt() as tf.Tensor1D;
      const w = this.lossWeights(batch);
      const head = this.headWeight();
      const bias = (this.headSpec.bias ? this.p(this.headSpec.bias) : tf.zeros([head.shape[1]])) as tf.Tensor1D;
      const opts2 = { softcap: this.headSpec.softcap };
      return opts.withGrad === false ? chunkedHeadLossNoGrad(h2, head, bias, targets, w, opts2) : chunkedHeadLoss(h2, head, bias, targets, w, opts2);
    });
  }

  /** Weights in PyTorch layout (Linear weights and banks transposed back), in parameters() order. */
  async toStateDict(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const spec of this.specs) {
      const v = this.p(spec.name);
      const perm = storedPermutation(spec);
      const t = perm ? tf.transpose(v, perm) : v;
      const values = (await t.data()) as Float32Array;
      if (t !== v) t.dispose();
      out.set(spec.name, { shape: spec.shape, dtype: 'float32', values: new Float32Array(values) });
    }
    return out;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}
