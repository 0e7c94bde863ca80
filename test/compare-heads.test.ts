/**
 * compare with `heads: true`: each model's heads on the compared tokens (the hover's head codes and
 * the layers × heads overview side by side). Checked against independent paths: the analysis's top
 * prediction against the batched scorer's NLL of the same token, the per-head means against the
 * per-token arrays they summarise, a model compared with itself, and model B's own shape.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type LoadedModel } from '../engine/runtime/loaded';
import { initRuntime } from '../engine/runtime/select';
import { compareModels } from '../engine/eval/compare';
import { decodeArray } from '../engine/codec';
import { gpt2Init } from '../engine/models/gpt2';
import { writeSafetensors } from '../engine/io/safetensors';
import type { CompareHeads, ModelConfig } from '../engine/protocol';
import { REPO } from './helpers/fixtures';

const text = fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8').slice(0, 600);

function tinyGpt2(dir: string): string {
  const config = { family: 'gpt2', vocab_size: 50257, block_size: 64, n_layer: 1, n_head: 2, n_embd: 16, bias: true, activation: 'gelu' } as ModelConfig;
  const file = path.join(dir, 'b.safetensors');
  writeSafetensors(file, gpt2Init(config, 7));
  fs.writeFileSync(path.join(dir, 'b.json'), JSON.stringify({ n_head: 2, block_size: 64 }));
  return file;
}

function meanOf(a: Float32Array, from: number, n: number): number {
  let s = 0, k = 0;
  for (let i = from; i < from + n; i++) if (Number.isFinite(a[i])) (s += a[i]), k++;
  return s / k;
}

describe('compare: the heads of both models', () => {
  let a: LoadedModel, b: LoadedModel, dir: string;
  before(async () => {
    const rt = await initRuntime('wasm');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-compare-heads-'));
    a = await loadModel({}, rt);
    b = await loadModel({ path: tinyGpt2(dir) }, rt);
  });
  after(async () => {
    await a.dispose();
    await b.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('without heads: true the result carries none', async () => {
    const r = await compareModels(a, a, text, { context: 64, stride: 32 });
    assert.equal(r.heads, undefined);
  });

  test('a model with itself: the same heads on both sides; means summarise the per-token arrays', async () => {
    const r = await compareModels(a, a, text, { context: 64, stride: 32, heads: true });
    assert.ok(r.heads);
    const { a: ha, b: hb } = r.heads;
    assert.deepEqual(ha.means, hb.means);
    assert.deepEqual(decodeArray(ha.attnMax), decodeArray(hb.attnMax));
    const N = r.tokens.length, L = a.info.layers, H = a.info.heads;
    assert.deepEqual(ha.attnMax.shape, [L, H, N]);
    const max = decodeArray(ha.attnMax) as Float32Array, ent = decodeArray(ha.entropy) as Float32Array;
    for (let i = 0; i < L * H; i++) {
      assert.ok(Math.abs(ha.means.attnMax[i] - meanOf(max, i * N, N)) < 1e-6, `attnMax mean of head ${i}`);
      assert.ok(Math.abs(ha.means.entropy[i] - meanOf(ent, i * N, N)) < 1e-6, `entropy mean of head ${i}`);
    }
    for (const v of max) assert.ok(v > 0 && v <= 1 + 1e-6, `attention max ${v} outside (0, 1]`);
    assert.deepEqual(ha.signals.map((s) => s.name).sort(), ['loraRel', 'loraTok'], 'the adaptive model reports its per-head signals');
    assert.equal(ha.means.loraTok.length, L * H);
  });

  test('the top prediction agrees with the scorer: where top-1 is the next token, −log p equals nll_a', async () => {
    const r = await compareModels(a, b, text, { heads: true });
    assert.equal(r.context, 64, 'the shorter context of the two');
    const ha: CompareHeads = r.heads!.a;
    const ids = decodeArray(ha.topIds), probs = decodeArray(ha.topProbs), K = ha.topIds.shape[1];
    assert.equal(K, 3);
    let checked = 0;
    for (let t = 0; t + 1 < r.tokens.length; t++) {
      assert.ok(probs[t * K] >= probs[t * K + 1] && probs[t * K + 1] >= probs[t * K + 2], 'top-k in order');
      if (ids[t * K] !== r.tokens[t + 1].id || r.tokens[t + 1].nll_a === null) continue;
      assert.ok(Math.abs(-Math.log(probs[t * K]) - r.tokens[t + 1].nll_a!) < 2e-3, `position ${t}: −log p ${-Math.log(probs[t * K])} vs NLL ${r.tokens[t + 1].nll_a}`);
      checked++;
    }
    assert.ok(checked >= 5, `only ${checked} positions where the top prediction was right`);
    for (const id of ids) assert.equal(typeof ha.vocabText[id], 'string');
  });

  test('model B has its own layers × heads and no adaptive signals', async () => {
    const r = await compareModels(a, b, text, { heads: true });
    const hb = r.heads!.b;
    assert.equal(hb.layers, 1);
    assert.equal(hb.heads, 2);
    assert.deepEqual(hb.attnMax.shape, [1, 2, r.tokens.length]);
    assert.deepEqual(Object.keys(hb.means).sort(), ['attnMax', 'entropy']);
    assert.notDeepEqual(r.heads!.a.means.attnMax.slice(0, 2), hb.means.attnMax);
  });
});
