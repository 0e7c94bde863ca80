/**
 * Test-time adapters on every causal family (engine/ttt/adapters.ts), on TensorFlow.js wasm:
 * - q, k and v adapters (and the head's, where the head is its own matrix) equal the unadapted
 *   model with ΔW = (α/r)·B·A merged into the projection's weight (a model we do not touch);
 * - with B = 0 every program is exactly the plain one;
 * - a whole LoRA-TTT run on a repeated document: every module's adapter moves (‖ΔW‖ > 0, so each
 *   one is wired into the program) and the chunks scored after training beat the base model.
 * Also the record's bits-per-byte table for SentencePiece models (shared/fixtures/sentencepiece
 * `bpb_table`, made by the record's own rule) and its documents' leading BOS.
 */
import { test, describe, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readCheckpoint, type CheckpointRead } from '../engine/io/checkpoint';
import type { HostTensor } from '../engine/io/tensor';
import { familyDef } from '../engine/models/registry';
import { makeRng } from '../engine/models/init';
import { initBackend } from '../engine/runtime/tfjs/backend';
import { TfModel } from '../engine/runtime/tfjs/model';
import { TfRunner } from '../engine/runtime/tfjs/runner';
import { adaptedHead, type Adapters, type LayerModule, type LoraFactors } from '../engine/ttt/adapters';
import { byteCounterFor, sentencePieceByteTable } from '../engine/ttt/bytes';
import { resolveSettings, runTtt, runnerScorer } from '../engine/ttt/lora';
import { documentOf } from '../engine/ttt/session';
import { loadSentencePiece } from '../engine/tokenizers/sentencepiece';
import { SHARED_FIXTURES } from './helpers/fixtures';

const fx = (p: string) => path.join(SHARED_FIXTURES, p);

interface Case {
  label: string;
  model: string;
  config?: string;
  /** The PyTorch weights of q, k, v at layer l: name and the rows each takes. */
  qkv: (l: number, C: number, kv: number) => Record<'q' | 'k' | 'v', { name: string; row0: number }>;
}

const fused = (prefix: string) => (l: number, C: number, kv: number) => ({
  q: { name: `${prefix}.${l}.attn.c_attn.weight`, row0: 0 },
  k: { name: `${prefix}.${l}.attn.c_attn.weight`, row0: C },
  v: { name: `${prefix}.${l}.attn.c_attn.weight`, row0: C + kv },
});

const CASES: Case[] = [
  { label: 'gpt2 (Hugging Face folder, tied head)', model: fx('gpt2/tiny-hf'), qkv: fused('transformer.h') },
  { label: 'a-gpt base', model: fx('agpt/tiny-base.model.safetensors'), config: fx('agpt/tiny-base.json'), qkv: fused('transformer.h') },
  { label: 'a-gpt adaptive (hypernetwork on v)', model: fx('agpt/tiny-adaptive.model.safetensors'), config: fx('agpt/tiny-adaptive.json'), qkv: fused('transformer.h') },
  {
    label: 'autoresearch (GQA, untied soft-capped head)',
    model: fx('autoresearch/tiny-gqa.model.safetensors'),
    config: fx('autoresearch/tiny-gqa.json'),
    qkv: (l) => ({ q: { name: `transformer.h.${l}.attn.c_q.weight`, row0: 0 }, k: { name: `transformer.h.${l}.attn.c_k.weight`, row0: 0 }, v: { name: `transformer.h.${l}.attn.c_v.weight`, row0: 0 } }),
  },
];

const RANK = 3, SCALE = 1.5;

/** Random A (r, in) and B (out, r), PyTorch layout. */
function randomFactors(rng: () => number, inF: number, outF: number): { A: Float32Array; B: Float32Array } {
  const draw = (n: number, s: number) => Float32Array.from({ length: n }, () => (2 * rng() - 1) * s);
  return { A: draw(RANK * inF, 0.3), B: draw(outF * RANK, 0.3) };
}

/** (α/r)·B·A (out, in). */
function delta(f: { A: Float32Array; B: Float32Array }, inF: number, outF: number): Float32Array {
  const d = new Float32Array(outF * inF);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) {
    let s = 0;
    for (let r = 0; r < RANK; r++) s += f.B[o * RANK + r] * f.A[r * inF + i];
    d[o * inF + i] = SCALE * s;
  }
  return d;
}

/** The runtime's factors: Aᵀ (in, r), Bᵀ (r, out). */
function factors(f: { A: Float32Array; B: Float32Array }, inF: number, outF: number): LoraFactors<tf.Tensor> {
  return { down: tf.transpose(tf.tensor2d(f.A, [RANK, inF])), up: tf.transpose(tf.tensor2d(f.B, [outF, RANK])) };
}

/** Logits of `ids` through the program with adapters and the adapted head. */
async function adaptedLogits(model: TfModel, ids: Int32Array, adapters: Adapters<tf.Tensor> | undefined): Promise<Float32Array> {
  const out = tf.tidy(() => {
    const prog = model.program(tf.tensor2d(ids, [1, ids.length], 'int32'), { adapters });
    for (let l = 0; l < prog.layers; l++) prog.step(l);
    return adaptedHead(model.ops, model.def.head(model.config), prog.final(), adapters);
  });
  const v = Float32Array.from(await out.data());
  out.dispose();
  return v;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function withDelta(weights: Map<string, HostTensor>, name: string, row0: number, d: Float32Array, rows: number): Map<string, HostTensor> {
  const out = new Map(weights);
  const w = weights.get(name)!, cols = w.shape[w.shape.length - 1];
  const values = Float32Array.from(w.values);
  for (let i = 0; i < rows * cols; i++) values[row0 * cols + i] += d[i];
  out.set(name, { ...w, values });
  return out;
}

for (const c of CASES) {
  describe(`test-time adapters: ${c.label}`, () => {
    let ck: CheckpointRead;
    let ids: Int32Array;
    before(async () => {
      await initBackend('wasm');
      ck = await readCheckpoint({ path: c.model, config: c.config });
      const rng = makeRng(5);
      ids = Int32Array.from({ length: Math.min(20, ck.config.block_size) }, () => Math.floor(rng() * ck.config.vocab_size));
    });

    test('q, k, v (and an untied head) adapters equal ΔW = (α/r)·B·A merged into the weights', async () => {
      const cfg = ck.config, def = familyDef(cfg.family), C = cfg.n_embd, kv = def.kvHeads(cfg) * (C / cfg.n_head), l = cfg.n_layer - 1;
      const rng = makeRng(11);
      const plain = new TfModel(cfg, ck.weights);
      const layers: Adapters<tf.Tensor>['layers'] = Array.from({ length: def.layerCount(cfg) }, () => ({}));
      let merged = ck.weights;
      const sites = c.qkv(l, C, kv);
      for (const m of ['q', 'k', 'v'] as LayerModule[]) {
        const out = m === 'q' ? C : kv;
        const f = randomFactors(rng, C, out);
        layers[l][m] = factors(f, C, out);
        merged = withDelta(merged, sites[m as 'q'].name, sites[m as 'q'].row0, delta(f, C, out), out);
      }
      const head = def.head(cfg);
      const adapters: Adapters<tf.Tensor> = { scale: SCALE, layers };
      if (!head.tied) {
        const f = randomFactors(rng, C, cfg.vocab_size);
        adapters.head = factors(f, C, cfg.vocab_size);
        merged = withDelta(merged, head.weight, 0, delta(f, C, cfg.vocab_size), cfg.vocab_size);
      }
      const mergedModel = new TfModel(cfg, merged);
      try {
        const got = await adaptedLogits(plain, ids, adapters), want = await adaptedLogits(mergedModel, ids, undefined), base = await adaptedLogits(plain, ids, undefined);
        const moved = maxDiff(want, base), err = maxDiff(got, want);
        assert.ok(moved > 1e-2, `the merged weights barely change the logits (${moved}): the test would not see a missing adapter`);
        assert.ok(err <= 1e-4 * Math.max(1, ...Array.from(want, Math.abs)), `adapters vs merged weights: max |diff| ${err}`);
      } finally {
        tf.dispose([...layers.flatMap((x) => Object.values(x).flatMap((f) => [f!.down, f!.up])), ...(adapters.head ? [adapters.head.down, adapters.head.up] : [])]);
        plain.dispose();
        mergedModel.dispose();
      }
    });

    test('adapters with B = 0 leave the program exactly as it is', async () => {
      const cfg = ck.config, def = familyDef(cfg.family), C = cfg.n_embd;
      const model = new TfModel(cfg, ck.weights);
      const zero = (out: number): LoraFactors<tf.Tensor> => ({ down: tf.randomUniform([C, RANK]), up: tf.zeros([RANK, out]) });
      const adapters: Adapters<tf.Tensor> = { scale: SCALE, layers: Array.from({ length: def.layerCount(cfg) }, () => ({ q: zero(C), k: zero(def.kvHeads(cfg) * (C / cfg.n_head)), v: zero(def.kvHeads(cfg) * (C / cfg.n_head)), o: zero(C), mlp: zero(C) })), head: zero(cfg.vocab_size) };
      try {
        assert.equal(maxDiff(await adaptedLogits(model, ids, adapters), await adaptedLogits(model, ids, undefined)), 0);
      } finally {
        tf.dispose([...adapters.layers.flatMap((x) => Object.values(x).flatMap((f) => [f!.down, f!.up])), adapters.head!.down, adapters.head!.up]);
        model.dispose();
      }
    });

    test('a LoRA-TTT run moves every module’s adapter and learns the repeated document', async () => {
      const cfg = ck.config, def = familyDef(cfg.family);
      const rng = makeRng(3);
      const motif = Array.from({ length: 5 }, () => 4 + Math.floor(rng() * (cfg.vocab_size - 4)));
      const doc = Int32Array.from({ length: 41 }, (_, i) => motif[i % motif.length]);
      const model = new TfModel(cfg, ck.weights);
      const runner = new TfRunner(model, 'wasm', { kind: 'cpu', name: 'test' });
      const settings = resolveSettings({ chunk: 8, evalLen: Math.min(32, cfg.block_size), rank: 4, alpha: 4.5, lr: 1e-2 }, cfg);
      try {
        const r = await runTtt({ def, model, score: runnerScorer(runner), doc, settings });
        const last = r.chunks[r.chunks.length - 2];
        r.specs.forEach((s, i) => assert.ok(last.deltaFro[i] > 0, `${s.name} never moved: its adapter is not in the program`));
        assert.equal(r.specs.length, 1 + 5 * def.layerCount(cfg));
        const later = r.chunks.slice(2);
        const gain = later.reduce((sum, x) => sum + x.lossBase - x.lossBefore, 0) / later.length;
        assert.ok(gain > 0.5, `TTT should beat the base model on a repeated motif; mean gain ${gain} nats`);
      } finally {
        model.dispose();
      }
    });
  });
}

describe('bits per byte as the record counts them', () => {
  const SP = fx('sentencepiece');
  const ref = JSON.parse(fs.readFileSync(path.join(SP, 'tiny-bpe.expected.json'), 'utf8'));
  const tok = loadSentencePiece(path.join(SP, 'tiny-bpe.model'));

  test('the byte table is the fixture’s bpb_table; ids past the tokenizer are boundaries with no bytes', () => {
    const table = sentencePieceByteTable(tok, tok.vocabSize + 3);
    (ref.bpb_table.rows as [number, boolean, boolean][]).forEach(([base, lead, boundary], id) => {
      assert.deepEqual([table.baseBytes[id], !!table.hasLeadingSpace[id], !!table.isBoundary[id]], [base, lead, boundary], `id ${id}`);
    });
    for (let id = tok.vocabSize; id < tok.vocabSize + 3; id++) assert.deepEqual([table.baseBytes[id], table.hasLeadingSpace[id], table.isBoundary[id]], [0, 0, 1]);
  });

  test('the leading "▁" is a byte only after a token that is not a boundary', () => {
    const rows = ref.bpb_table.rows as [number, boolean, boolean][];
    const spaced = rows.findIndex(([, lead]) => lead), normal = rows.findIndex(([b, lead, boundary]) => b > 0 && !lead && !boundary);
    const count = byteCounterFor(tok, tok.vocabSize);
    assert.equal(count(normal, spaced), rows[spaced][0] + 1);
    assert.equal(count(tok.bosId!, spaced), rows[spaced][0]);
    assert.equal(count(normal, tok.bosId!), 0, 'a predicted BOS costs NLL but adds no bytes');
  });

  test('a SentencePiece document starts with BOS (the record’s [BOS] + tokens), other tokenizers’ do not', () => {
    const d = documentOf(tok, 'def f(x): return x');
    assert.equal(d.ids[0], tok.bosId);
    assert.deepEqual(Array.from(d.ids.subarray(1)), tok.encode('def f(x): return x'));
    assert.deepEqual([d.tokens[0].start, d.tokens[0].end], [0, 0]);
    assert.ok(d.tokens.every((t, i) => t.index === i));
  });
});
