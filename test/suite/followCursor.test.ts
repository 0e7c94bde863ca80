/**
 * Follow Cursor in the real editor with the embedded starter model: the keys it underlines are the
 * top-k of the query's attention row — computed here from the engine's raw streamed events (the
 * window that owns the query, its f16 map), not from the extension's own maths — in both
 * directions, for a query in a later window, for the layer's max over heads; the hover lists them;
 * the metric colours step aside and come back when it is turned off; next/previous head and layer
 * move the focus; and switching `headlens.decorationStyle` redraws the colours in the new style.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { AnalyzeEvent } from '../../engine/protocol';
import { decodeArray } from '../../engine/codec';
import type { DocumentAnalysis } from '../../extension/analysis';
import type { HeadLensApi } from '../../extension/extension';
import { EXT_ID, headLens, hoverText, openSample, setSetting, until } from './util';

let api: HeadLensApi;
let editor: vscode.TextEditor;
let analysis: DocumentAnalysis;
const TOP_K = 5;

interface RawWindow {
  start: number;
  length: number;
  ownFrom: number;
  ownTo: number;
  /** Per layer (H, T, T), decoded from the layer event. */
  attn: Map<number, Float32Array>;
}

/** The windows as the engine streamed them. */
function rawWindows(events: AnalyzeEvent[]): RawWindow[] {
  const out: RawWindow[] = [];
  for (const e of events) {
    if (e.kind === 'tokens') out[e.window] = { start: e.tokenStart, length: e.tokens.length, ownFrom: e.ownFrom ?? e.tokenStart, ownTo: e.ownTo ?? e.tokenStart + e.tokens.length, attn: new Map() };
    else if (e.kind === 'layer' && e.attn) out[e.window].attn.set(e.layer, decodeArray(e.attn) as Float32Array);
  }
  return out;
}

const ownerOf = (wins: RawWindow[], t: number) => wins.findIndex((w) => t >= w.ownFrom && t < w.ownTo);

/** weight(query q → key k) at (l, h), read in window w; undefined when w does not hold both. */
function weightIn(w: RawWindow, l: number, h: number, q: number, k: number): number | undefined {
  const a = w.attn.get(l);
  if (!a || k < w.start || k >= w.start + w.length) return undefined;
  const T = w.length;
  return a[(h * T + q - w.start) * T + k - w.start];
}

/** The expected top-k (index, weight): largest first, ties to the earlier token, the cursor's token left out. */
function ranked(weights: Map<number, number>, exclude: number): { index: number; weight: number }[] {
  return [...weights].filter(([i, v]) => i !== exclude && v > 0).map(([index, weight]) => ({ index, weight })).sort((a, b) => b.weight - a.weight || a.index - b.index).slice(0, TOP_K);
}

/** The query's row at (l, heads combined by `combine`), from the window that owns it. */
function expectedRow(a: DocumentAnalysis, t: number, l: number, heads: number[], combine: 'mean' | 'max'): Map<number, number> {
  const wins = rawWindows(a.events);
  const w = wins[ownerOf(wins, t)];
  const row = new Map<number, number>();
  for (let k = w.start; k < w.start + w.length; k++) {
    const vs = heads.map((h) => weightIn(w, l, h, t, k)!);
    row.set(k, combine === 'max' ? Math.max(...vs) : vs.reduce((x, y) => x + y, 0) / vs.length);
  }
  return row;
}

/** The key's column at (l, h): each query read in the window that owns it, where that window holds the key. */
function expectedColumn(a: DocumentAnalysis, k: number, l: number, h: number): Map<number, number> {
  const wins = rawWindows(a.events);
  const col = new Map<number, number>();
  for (let q = 0; q < a.record.N; q++) {
    const v = weightIn(wins[ownerOf(wins, q)], l, h, q, k);
    if (v !== undefined) col.set(q, v);
  }
  return col;
}

/** Where a token's underline must be: its visible characters (a token of spaces keeps them, without line breaks). */
function expectedRange(doc: vscode.TextDocument, a: DocumentAnalysis, t: number): string | null {
  const tok = a.record.tokens[t];
  const chars = doc.getText().slice(tok.start, tok.end);
  const skip = chars.trim() ? /\s/ : /[\r\n]/;
  let s = 0, e = chars.length;
  while (s < e && skip.test(chars[s])) s++;
  while (e > s && skip.test(chars[e - 1])) e--;
  return e > s ? `${tok.start + s}-${tok.start + e}` : null;
}

const offsets = (doc: vscode.TextDocument, r: vscode.Range | null) => (r ? `${doc.offsetAt(r.start)}-${doc.offsetAt(r.end)}` : null);

/** Put the cursor inside token t and wait until Follow Cursor drew it as the query. */
async function cursorOn(t: number): Promise<NonNullable<ReturnType<HeadLensApi['followCursor']['renderedFor']>>> {
  const tok = analysis.record.tokens[t];
  const text = editor.document.getText().slice(tok.start, tok.end);
  const inside = tok.start + Math.max(text.length - text.trimStart().length, 0) + (text.trim().length > 1 ? 1 : 0);
  const pos = editor.document.positionAt(inside);
  editor.selection = new vscode.Selection(pos, pos);
  return until(() => {
    const r = api.followCursor.renderedFor(editor.document.uri.toString());
    return r && r.query === t && r.mode === api.followCursor.mode && r.choice.aggregate === api.followCursor.aggregate && r.choice.layer === api.decorations.focus.layer && r.choice.head === api.decorations.focus.head && r;
  }, `Follow Cursor to draw token #${t}`, 10_000);
}

function assertTopKeys(render: { top: { index: number; weight: number }[]; topRanges: (vscode.Range | null)[] }, expected: { index: number; weight: number }[], what: string): void {
  assert.equal(expected.length, TOP_K, `${what}: fewer than ${TOP_K} keys with weight, nothing to compare`);
  assert.deepEqual(render.top.map((k) => k.index), expected.map((k) => k.index), `${what}: the underlined tokens`);
  render.top.forEach((k, i) => assert.ok(Math.abs(k.weight - expected[i].weight) < 1e-6, `${what}: weight of #${k.index} ${k.weight} vs ${expected[i].weight}`));
  const doc = editor.document;
  assert.deepEqual(render.topRanges.map((r) => offsets(doc, r)), expected.map((k) => expectedRange(doc, analysis, k.index)), `${what}: the underlined ranges`);
}

/** A token index for a word of the sample (its n-th occurrence from the end when `fromEnd`). */
function tokenOf(word: string, fromEnd = false): number {
  const text = editor.document.getText();
  const at = fromEnd ? text.lastIndexOf(word) : text.indexOf(word);
  assert.ok(at >= 0, `the sample has no '${word}'`);
  const t = analysis.record.tokenAt(at + 1);
  assert.ok(t >= 0);
  return t;
}

suite('Follow Cursor', () => {
  suiteSetup(async () => {
    api = await headLens();
    editor = await openSample();
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    analysis = api.store.get(editor.document.uri.toString())!;
    assert.ok(analysis?.complete, 'no complete analysis');
    assert.ok(analysis.result.windowCount >= 2, `the sample needs at least two windows, it has ${analysis.result.windowCount}`);
    await until(() => api.decorationCount(editor.document.uri) > 20, 'the metric colours');
  });

  setup(async () => {
    editor = await openSample();
    api.decorations.setFocus(1, 2, 'editor');
    await vscode.commands.executeCommand('headlens.followCursorMode', 'attendsTo');
    await vscode.commands.executeCommand('headlens.chooseFollowAggregate', 'head');
    await vscode.commands.executeCommand('headlens.toggleFollowCursor', true);
  });

  teardown(async () => {
    await vscode.commands.executeCommand('headlens.toggleFollowCursor', false);
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('headlens.followCursorMode', 'attendsTo');
    await vscode.commands.executeCommand('headlens.chooseFollowAggregate', 'head');
    api.decorations.setFocus(-1, -1, 'editor');
    await vscode.commands.executeCommand('headlens.clearAnnotations');
  });

  test('attends to: the top-k keys of the query under the cursor (L1.H2) are underlined, the strongest in the top tint', async () => {
    const t = tokenOf('softmax(scores)');
    const render = await cursorOn(t);
    const expected = ranked(expectedRow(analysis, t, 1, [2], 'mean'), t);
    assertTopKeys(render, expected, `query #${t}`);
    // the strongest key is in the top tint (a token of line breaks alone has nothing to draw on)
    const topRange = offsets(editor.document, render.topRanges[0]);
    if (topRange) assert.ok(render.levelRanges[render.levelRanges.length - 1].some((r) => offsets(editor.document, r) === topRange), `the strongest key #${render.top[0].index} is not in the top level`);
    assert.equal(offsets(editor.document, render.queryRange), expectedRange(editor.document, analysis, t), 'the query is not outlined');
    assert.ok(Math.abs(render.scaleTop - expected[0].weight) < 1e-6, 'the scale does not end at the largest weight');
    assert.equal(render.heads, 'L1.H2');
    assert.ok(render.ms < 50, `a cursor move took ${render.ms} ms to draw`);
    // the metric colours step aside while the cursor's attention is shown
    await until(() => api.decorationCount(editor.document.uri) === 0, 'the metric colours to step aside', 5000);
    assert.match(api.followCursor.statusText, /Follow: attends to · L1\.H2/);
  });

  test('moving the cursor draws the new query’s keys', async () => {
    const first = await cursorOn(tokenOf('def attend'));
    const t = tokenOf('weights, values');
    const second = await cursorOn(t);
    assert.notDeepEqual(second.top.map((k) => k.index), first.top.map((k) => k.index));
    assertTopKeys(second, ranked(expectedRow(analysis, t, 1, [2], 'mean'), t), `query #${t}`);
  });

  test('the hover of the query lists its top-k keys with their text and weights, in order', async () => {
    const t = tokenOf('softmax(scores)');
    const render = await cursorOn(t);
    const md = await hoverText(editor.document.uri, editor.selection.active);
    assert.match(md, new RegExp(`\\*\\*Follow Cursor\\*\\* · #${t} `));
    const rows = md.split('\n').filter((line) => /^\| \d+ \| #\d+ \|/.test(line));
    assert.deepEqual(rows.map((r) => Number(/#(\d+)/.exec(r)![1])), render.top.map((k) => k.index));
    rows.forEach((r, i) => assert.ok(r.includes(render.top[i].weight.toFixed(3)), `row ${r} lacks weight ${render.top[i].weight.toFixed(3)}`));
  });

  test('attended by: the queries that attend most to the token under the cursor, gathered over every window', async () => {
    await vscode.commands.executeCommand('headlens.followCursorMode', 'attendedBy');
    const k = tokenOf('scores');
    const render = await cursorOn(k);
    const column = expectedColumn(analysis, k, 1, 2);
    assertTopKeys(render, ranked(column, k), `key #${k}`);
    assert.ok(render.top.every((q) => q.index > k), 'a causal model: only later queries attend to a token');
    assert.match(api.followCursor.statusText, /attended by/);
  });

  test('a query in a later window reads its row from the window that owns it', async () => {
    const t = tokenOf('print("output', true);
    const wins = rawWindows(analysis.events);
    const owner = ownerOf(wins, t);
    assert.ok(owner >= 1, `token #${t} is in window ${owner}: not a later window`);
    const render = await cursorOn(t);
    const expected = ranked(expectedRow(analysis, t, 1, [2], 'mean'), t);
    assertTopKeys(render, expected, `query #${t} in window ${owner}`);
    const w = wins[owner];
    assert.ok(render.top.every((x) => x.index >= w.start && x.index < w.start + w.length), 'a key outside the owning window');
  });

  test('max over heads reads every head of the focused layer', async () => {
    await vscode.commands.executeCommand('headlens.chooseFollowAggregate', 'maxHeads');
    const t = tokenOf('softmax(scores)');
    const render = await cursorOn(t);
    const H = analysis.record.H;
    assertTopKeys(render, ranked(expectedRow(analysis, t, 1, [...Array(H).keys()], 'max'), t), `query #${t} max over heads`);
    assert.equal(render.heads, 'L1 max over heads');
  });

  test('next/previous head and layer move the shared focus and redraw; their keys are scoped to Follow Cursor', async () => {
    const { L, H } = analysis.record;
    const t = tokenOf('softmax(scores)');
    await cursorOn(t);
    await vscode.commands.executeCommand('headlens.nextHead');
    assert.deepEqual([api.decorations.focus.layer, api.decorations.focus.head], [1, (2 + 1) % H]);
    let render = await cursorOn(t);
    assertTopKeys(render, ranked(expectedRow(analysis, t, 1, [(2 + 1) % H], 'mean'), t), 'after Next Head');
    await vscode.commands.executeCommand('headlens.previousLayer');
    assert.deepEqual([api.decorations.focus.layer, api.decorations.focus.head], [0, (2 + 1) % H]);
    await vscode.commands.executeCommand('headlens.previousHead');
    await vscode.commands.executeCommand('headlens.previousHead');
    assert.equal(api.decorations.focus.head, (2 + H - 1) % H);
    await vscode.commands.executeCommand('headlens.nextLayer');
    assert.equal(api.decorations.focus.layer, 1 % L);
    render = await cursorOn(t);
    assert.equal(render.heads, `L${1 % L}.H${(2 + H - 1) % H}`);
    const keys = vscode.extensions.getExtension(EXT_ID)!.packageJSON.contributes.keybindings as { command: string; when?: string }[];
    for (const c of ['headlens.nextHead', 'headlens.previousHead', 'headlens.nextLayer', 'headlens.previousLayer']) {
      assert.match(keys.find((k) => k.command === c)?.when ?? '', /headlens\.followCursor/, `${c} has no key scoped to Follow Cursor`);
    }
  });

  test('turning it off clears its decorations and brings the metric colours back', async () => {
    await cursorOn(tokenOf('softmax(scores)'));
    await vscode.commands.executeCommand('headlens.toggleFollowCursor');
    assert.equal(api.followCursor.enabled, false);
    await until(() => api.followCursor.renderedFor(editor.document.uri.toString()) === undefined, 'the Follow Cursor decorations to go', 5000);
    await until(() => api.decorationCount(editor.document.uri) > 20, 'the metric colours to come back', 5000);
    assert.equal(vscode.workspace.getConfiguration('headlens').get('followCursor'), false, 'the setting was not written');
    assert.match(api.followCursor.statusText, /eye-closed/);
  });

  test('a decoration style switch redraws the colours in the new style', async () => {
    await vscode.commands.executeCommand('headlens.toggleFollowCursor', false);
    const uri = editor.document.uri;
    assert.equal(api.decorations.style, 'subtle', 'subtle is not the default style');
    assert.ok(api.decorations.levelOptions.every((o) => o.backgroundColor instanceof vscode.ThemeColor && /^headlens\.subtle\d$/.test(o.backgroundColor.id)));
    const restore = await setSetting('decorationStyle', 'underline');
    try {
      await until(() => api.decorations.renderedStyle.get(uri.toString()) === 'underline' && api.decorationCount(uri) > 20, 'the colours drawn as underlines', 5000);
      for (const o of api.decorations.levelOptions) {
        assert.equal(o.backgroundColor, undefined);
        assert.match(String(o.borderStyle), /^none none solid none$/);
        assert.ok(o.borderColor instanceof vscode.ThemeColor && /^headlens\.line\d$/.test(o.borderColor.id));
      }
      await setSetting('decorationStyle', 'border');
      await until(() => api.decorations.renderedStyle.get(uri.toString()) === 'border' && api.decorationCount(uri) > 20, 'the colours drawn as left borders', 5000);
      assert.match(String(api.decorations.levelOptions[0].borderStyle), /^none none none solid$/);
      await setSetting('decorationStyle', 'background');
      await until(() => api.decorations.renderedStyle.get(uri.toString()) === 'background', 'the saturated backgrounds', 5000);
      assert.ok(api.decorations.levelOptions.every((o, i) => o.backgroundColor instanceof vscode.ThemeColor && o.backgroundColor.id === `headlens.heat${i + 1}`));
    } finally {
      await restore();
    }
    await until(() => api.decorations.renderedStyle.get(uri.toString()) === 'subtle', 'the default style back', 5000);
  });
});
