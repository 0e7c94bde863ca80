/**
 * The evaluation, compare, intervention and timeline methods over the protocol (in-memory streams,
 * the starter model on WASM): results against what the engine's own modules compute, progress
 * streamed, a cancelled sweep answered as cancelled, checkpoints ordered by step.
 */
import { test, describe, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineRequestError } from '../engine/server/client';
import { decodeArray } from '../engine/codec';
import { ErrorCode, type SweepCellEvent, type TimelineEvent } from '../engine/protocol';
import { REPO } from './helpers/fixtures';
import { cancelAtProgress, inMemoryEngine } from './helpers/engine';

const TEXT = fs.readFileSync(path.join(REPO, 'media', 'samples', 'attention.py'), 'utf8').slice(0, 600);
const STARTER = path.join(REPO, 'media', 'models', 'starter-adaptive.safetensors');

describe('evaluation and intervention methods', () => {
  const engine = inMemoryEngine();
  const { client, service } = engine;
  before(() => engine.start(''));
  after(() => engine.end());

  test('eval/ppl streams progress and reports the scored tokens', async () => {
    const progress: { done: number; total: number }[] = [];
    const r = await client.request('eval/ppl', { texts: [{ name: 'a', text: TEXT }, { name: 'b', text: TEXT.slice(0, 200) }] }, { onProgress: (p) => progress.push(p) });
    assert.ok(progress.length >= 2 && progress.every((p) => p.done <= p.total));
    assert.equal(r.documents, 2);
    assert.ok(r.by_source && r.by_source.a.tokens > r.by_source.b.tokens);
    assert.equal(r.tokens, r.by_source!.a.tokens + r.by_source!.b.tokens);
  });

  test('compare with the same checkpoint as model B: ΔNLL 0 everywhere', async () => {
    const r = await client.request('compare', { text: TEXT, modelB: { path: STARTER } });
    assert.ok(r.tokens.every((t) => t.dnll === null || t.dnll === 0));
    assert.equal(r.summary.overall.mean, 0);
  });

  test('ablate/run: zeroing a head moves the NLL; the base is the intact model', async () => {
    const r = await client.request('ablate/run', { text: TEXT, ablations: [{ layer: 1, head: 2, mode: 'zero' }] });
    const nll = decodeArray(r.nll), base = decodeArray(r.base);
    assert.equal(nll.length, r.tokens.length);
    let moved = 0;
    for (let i = 1; i < nll.length; i++) moved = Math.max(moved, Math.abs(nll[i] - base[i]));
    assert.ok(moved > 1e-4, `max change ${moved}`);
  });

  test('ablate/sweep streams one cell per head with its per-token ΔNLL', async () => {
    const cells: SweepCellEvent[] = [];
    const r = await client.request('ablate/sweep', { text: TEXT.slice(0, 300), mode: 'zero' }, { onProgress: (c) => cells.push(c) });
    const info = service.loaded!.info;
    assert.equal(cells.length, info.layers * info.heads);
    assert.equal(r.cells.length, cells.length);
    assert.equal(decodeArray(cells[0].dnll).length, r.tokens.length);
  });

  test('ablate/sweep cancelled half way answers Cancelled', async () => {
    const p = client.request('ablate/sweep', { text: TEXT, mode: 'mean' }, cancelAtProgress(2));
    await assert.rejects(p, (e) => e instanceof EngineRequestError && e.code === ErrorCode.Cancelled);
  });

  test('ablate/run refuses adaptive-off outside the model with one line', async () => {
    await assert.rejects(client.request('ablate/run', { text: TEXT, ablations: [{ layer: 9, head: 0, mode: 'zero' }] }), /layer 9 is outside the model/);
  });

  test('checkpoints/list orders a run by step; checkpoints/analyze streams one timeline point each', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-timeline-'));
    for (const step of [200, 50, 1000]) fs.copyFileSync(STARTER, path.join(dir, `model_${String(step).padStart(6, '0')}.safetensors`));
    fs.writeFileSync(path.join(dir, 'train.log'), 'not a checkpoint');
    const list = await client.request('checkpoints/list', { folder: dir });
    assert.deepEqual(list.map((c) => c.step), [50, 200, 1000]);
    const points: TimelineEvent[] = [];
    const r = await client.request('checkpoints/analyze', { text: TEXT.slice(0, 200), paths: list.map((c) => c.path) }, { onProgress: (e) => points.push(e) });
    assert.equal(r.count, 3);
    assert.deepEqual(points.map((e) => e.step), [50, 200, 1000]);
    assert.deepEqual(Array.from(decodeArray(points[0].nll)), Array.from(decodeArray(points[2].nll)), 'the same weights give the same NLL');
    assert.ok(points[0].headSignals.loraRel?.length === service.loaded!.info.layers * service.loaded!.info.heads);
  });
});
