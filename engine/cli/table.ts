/**
 * The readable per-token table of `headlens analyze`: token, NLL, top prediction, strongest head
 * (the layer.head with the highest attention max at that token, and the key it looks at) and the
 * model's first per-head signal (e.g. a-gpt's loraTok, a gate): its largest value over layers and
 * heads, with its head.
 */
import type { AnalyzeLayerEvent, AnalyzeOutputEvent, ExplorerData } from '../protocol';
import { decodeArray } from '../codec';

interface Row {
  nll: number;
  top: string;
  strong: string;
  lora: string;
}

function show(s: string, width: number): string {
  const visible = JSON.stringify(s).slice(1, -1);
  const cut = visible.length > width ? visible.slice(0, width - 1) + '…' : visible;
  return cut.padEnd(width);
}

export function formatTokenTable(data: ExplorerData, maxRows = 400): string {
  const { tokens, events, result } = data;
  const rows: Row[] = tokens.map(() => ({ nll: NaN, top: '', strong: '', lora: '' }));
  const best = tokens.map(() => ({ attn: -1, lora: -Infinity }));
  const signal = (data.model.signals ?? []).find((s) => s.scope === 'head×token' || s.scope === 'kvhead×token');
  const own = new Map<number, [number, number]>(); // window → the positions it scores
  for (const ev of events) {
    if (ev.kind === 'tokens') own.set(ev.window, [ev.ownFrom ?? ev.tokenStart, ev.ownTo ?? ev.tokenStart + ev.tokens.length]);
    if (ev.kind === 'layer') fillLayer(ev, rows, best, tokens.map((t) => t.text), own.get(ev.window)!, signal?.name);
    if (ev.kind === 'output') fillOutput(ev, rows, result.vocabText, own.get(ev.window)!);
  }
  const adaptive = !!signal;
  const header = `${'#'.padStart(5)}  ${'token'.padEnd(16)} ${'NLL'.padStart(7)}  ${'top prediction'.padEnd(16)} ${'strongest head'.padEnd(30)}${signal ? ` ${signal.label} (head)` : ''}`;
  const lines = [header, '-'.repeat(header.length)];
  const n = Math.min(rows.length, maxRows);
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    lines.push(`${String(i).padStart(5)}  ${show(tokens[i].text, 16)} ${(Number.isFinite(r.nll) ? r.nll.toFixed(3) : '—').padStart(7)}  ${show(r.top, 16)} ${r.strong.padEnd(30)}${adaptive ? ' ' + r.lora : ''}`);
  }
  if (rows.length > n) lines.push(`… ${rows.length - n} more tokens (use --json for the full record)`);
  const meanNll = result.meanNll === null ? '—' : result.meanNll.toFixed(3);
  lines.push(`${result.tokenCount} tokens in ${result.windowCount} window(s), ${result.layers} layers × ${result.heads} heads, mean NLL ${meanNll}` +
    (result.maxLeak !== null ? `, max causality leak ${result.maxLeak.toExponential(2)}` : '') + `, ${result.elapsedMs} ms on ${result.backend}`);
  return lines.join('\n');
}

function fillLayer(ev: AnalyzeLayerEvent, rows: Row[], best: { attn: number; lora: number }[], texts: string[], [from, to]: [number, number], signal?: string): void {
  const [H, T] = ev.headMax.shape;
  const max = decodeArray(ev.headMax), arg = decodeArray(ev.headArgmax);
  const enc = signal ? ev.signals?.[signal] : undefined;
  const lora = enc && enc.shape[0] === H ? decodeArray(enc) : null;
  for (let h = 0; h < H; h++) {
    for (let t = from - ev.tokenStart; t < Math.min(T, to - ev.tokenStart); t++) {
      const i = ev.tokenStart + t;
      if (max[h * T + t] > best[i].attn) {
        best[i].attn = max[h * T + t];
        const key = ev.tokenStart + arg[h * T + t];
        rows[i].strong = `L${ev.layer}.H${h} ${max[h * T + t].toFixed(2)} → ${JSON.stringify(texts[key] ?? '').slice(0, 14)}`;
      }
      if (lora && lora[h * T + t] > best[i].lora) {
        best[i].lora = lora[h * T + t];
        rows[i].lora = `${lora[h * T + t].toExponential(2)} (L${ev.layer}.H${h})`;
      }
    }
  }
}

function fillOutput(ev: AnalyzeOutputEvent, rows: Row[], vocabText: Record<number, string>, [from, to]: [number, number]): void {
  const nll = decodeArray(ev.nll), ids = decodeArray(ev.topIds), probs = decodeArray(ev.topProbs);
  const [T, K] = ev.topIds.shape;
  for (let t = from - ev.tokenStart; t < Math.min(T, to - ev.tokenStart); t++) {
    const row = rows[ev.tokenStart + t];
    row.nll = nll[t];
    row.top = `${vocabText[ids[t * K]] ?? ids[t * K]} ${(probs[t * K] * 100).toFixed(0)}%`;
  }
}
