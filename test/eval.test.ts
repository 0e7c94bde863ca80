/**
 * Evaluation against independent truth: per-token NLL and perplexity of the sliding-window rule
 * equal those the a-gpt authors' PyTorch code gives on the shared fixture weights
 * (test/reference/eval/sliding.json, made by scripts/reference/sliding_ppl.py) on every runtime; a
 * multiple-choice ending scored by hand from `forward` logits equals `eval mc`'s score; a model
 * compared with itself differs by 0 everywhere; the CLI contracts and bad inputs.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type LoadedModel } from '../engine/runtime/loaded';
import { initRuntime } from '../engine/runtime/select';
import { scoreIds } from '../engine/eval/score';
import { evalMc } from '../engine/eval/mc';
import { compareModels } from '../engine/eval/compare';
import { decodeArray } from '../engine/codec';
import { bootstrapMean, classifyTokens, repeatedInContext } from '../engine/eval/classes';
import { ENGINE_JS, FIXTURES, REPO, SHARED_FIXTURES, testBackends } from './helpers/fixtures';

const ref = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'reference', 'eval', 'sliding.json'), 'utf8')) as {
  ids: number[];
  cases: { family: string; context: number; stride: number; rule: string; nll: (number | null)[]; ppl: number; tokens: number }[];
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-eval-'));

async function fixtureModel(backend: string, family: string): Promise<LoadedModel> {
  const state = await initRuntime(backend as never);
  const base = path.join(FIXTURES, `tiny-${family}`);
  return loadModel({ path: `${base}.model.safetensors`, config: `${base}.json` }, state);
}

for (const backend of testBackends().filter((b) => b !== 'cpu')) {
  describe(`sliding-window perplexity on ${backend}`, () => {
    for (const c of ref.cases) {
      test(`${c.family}, context ${c.context}, stride ${c.stride} (${c.rule}): per-token NLL and ppl equal the authors' PyTorch`, async () => {
        const lm = await fixtureModel(backend, c.family);
        try {
          const got = await scoreIds(lm, Int32Array.from(ref.ids), c.context, c.stride);
          let sum = 0, n = 0;
          c.nll.forEach((want, i) => {
            if (want === null) return assert.ok(Number.isNaN(got.nll[i]), `token ${i} should be unscored`);
            assert.ok(Math.abs(got.nll[i] - want) <= 1e-3 * Math.max(1, Math.abs(want)), `token ${i}: ${got.nll[i]} vs ${want}`);
            sum += got.nll[i];
            n++;
          });
          assert.equal(n, c.tokens);
          assert.ok(Math.abs(Math.exp(sum / n) - c.ppl) <= 1e-3 * c.ppl, `ppl ${Math.exp(sum / n)} vs ${c.ppl}`);
        } finally {
          await lm.dispose();
        }
      });
    }
  });
}

describe('multiple choice and compare', () => {
  test('an ending scored by hand from the forward logits equals eval mc', async () => {
    const lm = await loadModel({}, await initRuntime('wasm'));
    try {
      const item = { ctx: 'def softmax(x):\n    e = np.exp(x - x.max())\n   ', endings: [' return e / e.sum()', ' print("hello")'], label: 0 };
      const r = await evalMc(lm, [item]);
      for (const [k, ending] of item.endings.entries()) {
        const ctx = lm.tokenizer.encode(item.ctx), end = lm.tokenizer.encode(' ' + ending);
        const ids = [...ctx, ...end];
        const f = await lm.runner.forwardTensors(Int32Array.from(ids), 1, ids.length);
        const logits = f.get('logits')!.values, V = lm.config.vocab_size;
        let sum = 0;
        for (let i = ctx.length; i < ids.length; i++) {
          const row = logits.subarray((i - 1) * V, i * V);
          let max = -Infinity;
          for (const v of row) max = Math.max(max, v);
          let z = 0;
          for (const v of row) z += Math.exp(v - max);
          sum += row[ids[i]] - max - Math.log(z);
        }
        assert.ok(Math.abs(r.items[0].sum[k] - sum) <= 1e-3, `ending ${k}: ${r.items[0].sum[k]} vs ${sum}`);
        assert.ok(Math.abs(r.items[0].per_token[k] - sum / end.length) <= 1e-3);
        assert.ok(Math.abs(r.items[0].per_byte[k] - sum / Buffer.byteLength(' ' + ending)) <= 1e-4);
        assert.equal(r.items[0].logprobs[k].length, end.length);
      }
    } finally {
      await lm.dispose();
    }
  });

  test('a model compared with itself: ΔNLL is 0 at every token', async () => {
    const state = await initRuntime(testBackends().includes('onnx-cpu') ? 'onnx-cpu' : 'wasm');
    const a = await loadModel({}, state), b = await loadModel({}, state);
    try {
      const text = fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8').slice(0, 1500);
      const r = await compareModels(a, b, text, { context: 64, stride: 32 });
      const scored = r.tokens.filter((t) => t.dnll !== null);
      assert.equal(scored.length, r.tokens.length - 1, 'every token after the first is scored');
      for (const t of scored) assert.equal(t.dnll, 0);
      assert.equal(r.summary.overall.mean, 0);
      assert.ok(r.summary.by_class.identifier.n > 0 && r.summary.by_class.punctuation.n > 0 && r.summary.by_class.whitespace.n > 0);
      assert.equal(r.summary.repeated.n + r.summary.first.n, scored.length);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  test('token classes, repeats in context and the bootstrap interval', () => {
    const text = 'def f(x):\n    return x + 12  # add\ns = "hi"\n';
    const toks = [
      [0, 3], [3, 5], [5, 6], [6, 7], [7, 9], [9, 14], [14, 21], [21, 23], [23, 25], [25, 28], [28, 34], [34, 35], [35, 37], [37, 39], [39, 43], [43, 44],
    ].map(([start, end], index) => ({ index, id: 0, text: text.slice(start, end), start, end }));
    const cls = classifyTokens(text, toks);
    assert.deepEqual(cls, ['keyword', 'identifier', 'punctuation', 'identifier', 'punctuation', 'whitespace', 'keyword', 'identifier', 'punctuation', 'number', 'string/comment', 'whitespace', 'identifier', 'punctuation', 'string/comment', 'whitespace']);
    assert.deepEqual(Array.from(repeatedInContext([5, 6, 5, 7, 5], [1, 2, 3, 4, 1])), [0, 0, 1, 0, 0]);
    const iv = bootstrapMean(Array.from({ length: 400 }, (_, i) => (i % 2 ? 1 : -1)));
    assert.equal(iv.mean, 0);
    assert.ok(iv.lo < 0 && iv.hi > 0 && iv.hi - iv.lo < 0.25, `[${iv.lo}, ${iv.hi}]`);
  });
});

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [ENGINE_JS, ...args, '--backend', 'wasm'], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function badInput(r: ReturnType<typeof cli>, re: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], re);
}

describe('eval and compare CLI', () => {
  const starter = path.join(REPO, 'media', 'models', 'starter-adaptive.safetensors');
  const sample = path.join(REPO, 'media', 'samples', 'attention.py');

  test('eval ppl --json: tokens, NLL, perplexity and bits per byte of the scored tokens', () => {
    const json = path.join(tmp, 'ppl.json');
    const r = cli(['eval', 'ppl', '--model', starter, '--text-file', sample, '--json', json]);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.equal(o.context, 128);
    assert.equal(o.stride, 64);
    assert.ok(o.tokens > 100);
    assert.ok(Math.abs(o.nll_mean - o.nll_sum / o.tokens) < 1e-9);
    assert.ok(Math.abs(o.ppl - Math.exp(o.nll_mean)) < 1e-6);
    assert.ok(Math.abs(o.bpb - o.nll_sum / (Math.LN2 * o.bytes)) < 1e-9);
    // byte-level BPE: the scored tokens are every token but the first, so their bytes are the file's minus the first token's
    const text = fs.readFileSync(sample, 'utf8');
    const firstToken = /^(\S+|\s+)/.exec(text)![0];
    assert.ok(o.bytes <= Buffer.byteLength(text) && o.bytes >= Buffer.byteLength(text) - Buffer.byteLength(firstToken) - 4, `bytes ${o.bytes}`);
  });

  test('eval ppl with stride = context scores every token after the first once (the disjoint windows)', () => {
    const json = path.join(tmp, 'ppl-disjoint.json');
    assert.equal(cli(['eval', 'ppl', '--model', starter, '--text-file', sample, '--stride', '128', '--json', json]).code, 0);
    const disjoint = JSON.parse(fs.readFileSync(json, 'utf8'));
    const half = JSON.parse(fs.readFileSync(path.join(tmp, 'ppl.json'), 'utf8'));
    assert.equal(disjoint.tokens, half.tokens);
    assert.notEqual(disjoint.nll_sum, half.nll_sum, 'overlapping windows give the tokens more context');
  });

  test('eval mc: accuracies by sum, per token and per byte; a context too long is cut from the left and said', () => {
    const data = path.join(tmp, 'mc.jsonl');
    const long = 'the '.repeat(200);
    fs.writeFileSync(data, [JSON.stringify({ ctx: 'import numpy as', endings: ['np', 'banana split'], label: 0, extra: 1 }), JSON.stringify({ ctx: long, endings: ['end', 'finish'], label: '1' })].join('\n') + '\n');
    const json = path.join(tmp, 'mc.json');
    const r = cli(['eval', 'mc', '--model', starter, '--data', data, '--json', json]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /1 context\(s\) were cut from the left to fit the model's 128-token context/);
    const o = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.equal(o.items.length, 2);
    assert.equal(o.items[1].label, 1);
    for (const k of ['acc_sum', 'acc_per_token', 'acc_per_byte']) assert.ok(o[k] >= 0 && o[k] <= 1);
    assert.ok(o.items[1].truncated > 0);
  });

  test('bad mc files: no endings, a label out of range, an empty file', () => {
    const f = (name: string, content: string) => {
      const p = path.join(tmp, name);
      fs.writeFileSync(p, content);
      return p;
    };
    badInput(cli(['eval', 'mc', '--model', starter, '--data', f('noend.jsonl', '{"ctx":"a","label":0}\n')]), /noend\.jsonl:1: no "endings"/);
    badInput(cli(['eval', 'mc', '--model', starter, '--data', f('label.jsonl', '{"ctx":"a","endings":["b","c"],"label":2}\n')]), /label\.jsonl:1: "label" 2 is not an index/);
    badInput(cli(['eval', 'mc', '--model', starter, '--data', f('empty.jsonl', '')]), /empty\.jsonl: no items/);
  });

  test('compare: two models with different tokenizers are refused in one line', () => {
    const sp = path.join(SHARED_FIXTURES, 'sentencepiece', 'tiny-bpe.model');
    badInput(cli(['compare', '--model', starter, '--model-b', starter, '--tokenizer-b', sp, '--text', 'hello world']), /do not share a tokenizer/);
  });

  test('compare --json: ΔNLL per token and the summary by token class', () => {
    const json = path.join(tmp, 'cmp.json');
    const r = cli(['compare', '--model', starter, '--model-b', starter, '--text-file', sample, '--json', json]);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.equal(o.summary.overall.mean, 0);
    assert.ok(o.tokens.every((t: { dnll: number | null }) => t.dnll === null || t.dnll === 0));
    assert.match(r.stdout, /identifier/);
  });

  test('compare --heads: both models\' heads in the JSON, equal for a model with itself, means of their own per-token arrays', () => {
    const json = path.join(tmp, 'cmp-heads.json');
    const r = cli(['compare', '--model', starter, '--model-b', starter, '--text-file', sample, '--heads', '--json', json]);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.ok(o.heads?.a && o.heads?.b, 'no heads in the JSON');
    assert.deepEqual(o.heads.a.means, o.heads.b.means);
    const { layers: L, heads: H } = o.heads.a;
    const ent = decodeArray(o.heads.a.entropy);
    const N = ent.length / (L * H);
    for (let i = 0; i < L * H; i++) {
      let sum = 0, n = 0;
      for (let t = 0; t < N; t++) if (Number.isFinite(ent[i * N + t])) (sum += ent[i * N + t]), n++;
      assert.ok(Math.abs(o.heads.a.means.entropy[i] - sum / n) <= 1e-4, `L${Math.floor(i / H)}.H${i % H}: mean entropy ${o.heads.a.means.entropy[i]} vs ${sum / n}`);
    }
    assert.match(r.stdout, /model A: per-head means/);
    assert.match(r.stdout, /L1\.H3 /);
  });

  test('eval ppl: a context longer than the model can take is refused', () => {
    badInput(cli(['eval', 'ppl', '--model', starter, '--text-file', sample, '--context', '4096']), /--context 4096 is longer than the model's context \(128 tokens\)/);
  });
});
