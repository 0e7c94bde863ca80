/**
 * The Attention Explorer's views, one function each (Bostock's reusable-chart shape): the
 * layers × heads overview, the focused head's attention matrix (canvas: 256+ tokens stay
 * smooth), the dynamic-LoRA strip and loraFro bars, the latent codes of all query–key pairs in
 * 2-D (PCA), and the NLL / causality-audit strips. Used by the panel and the standalone report.
 */
import * as d3 from 'd3';
import type { ExplorerData } from '../../engine/protocol';
import { AnalysisRecord } from '../../engine/analysis/record';
import { chartColors, cssVar, heatScale, rgbOf } from './theme';
import { fmt, section, showToken, tooltip } from './view';

export interface ExplorerState {
  layer: number;
  head: number;
  query: number | null;
  key: number | null;
  /** Which per-head signal the strip shows (a catalogue name). */
  loraMetric: string;
}

export interface ExplorerCallbacks {
  focus(layer: number, head: number): void;
  selectToken(index: number, role: 'query' | 'key'): void;
}

export class Explorer {
  record: AnalysisRecord | null = null;
  data: ExplorerData | null = null;

  constructor(
    private readonly root: d3.Selection<HTMLElement, unknown, null, undefined>,
    public state: ExplorerState,
    private readonly cb: ExplorerCallbacks,
  ) {}

  setData(data: ExplorerData): void {
    this.data = data;
    this.record = AnalysisRecord.from(data.events, data.model, data.result);
    const r = this.record;
    this.state.layer = Math.min(this.state.layer, Math.max(0, r.L - 1));
    this.state.head = Math.min(this.state.head, Math.max(0, r.H - 1));
    if (this.state.query !== null && this.state.query >= r.N) this.state.query = null;
    this.render();
  }

  clear(): void {
    this.data = null;
    this.record = null;
    this.render();
  }

  render(): void {
    const r = this.record;
    this.root.selectAll('p.empty').data(r && r.N ? [] : [1]).join('p').attr('class', 'empty').text('No analysis yet: run “Head Lens: Analyze Attention” in an editor.');
    if (!r || !r.N || !this.data) {
      this.root.selectAll('section').remove();
      return;
    }
    this.header(r);
    this.overview(r);
    this.matrix(r);
    this.lora(r);
    this.latent(r);
    this.strips(r);
  }

  /** Window shown by the matrix and the PCA: the one holding the selected query (else the first). */
  private window(r: AnalysisRecord): number {
    const w = this.state.query !== null ? r.windowOf(this.state.query) : 0;
    return w < 0 ? 0 : w;
  }

  private header(r: AnalysisRecord): void {
    const d = this.data!;
    const body = section(this.root, 'summary', 'Analysis');
    const res = d.result;
    const lines = [
      `${d.model.family} · ${d.model.config.n_layer} layers × ${d.model.config.n_head} heads · ${r.N} tokens in ${res.windowCount} window(s)`,
      `mean NLL ${fmt(res.meanNll)} · ${res.elapsedMs} ms on ${res.backend}` + (res.maxLeak !== null ? ` · max causality leak ${fmt(res.maxLeak, 4)}` : ''),
      `focus L${this.state.layer}.H${this.state.head}` + (this.state.query !== null ? ` · query #${this.state.query} ${showToken(r.tokens[this.state.query].text)}` : ''),
    ];
    body.selectAll('p').data(lines).join('p').text((x) => x);
  }

  /** L × H small multiples: a thumbnail of each head's attention in the current window. */
  private overview(r: AnalysisRecord): void {
    const body = section(this.root, 'overview', 'Layers × heads (click to focus)');
    const size = 56, pad = 6;
    const cells = d3.range(r.L).flatMap((l) => d3.range(r.H).map((h) => ({ l, h, id: `${l}.${h}` })));
    const svg = body
      .selectAll<SVGSVGElement, number>('svg')
      .data([0])
      .join('svg')
      .attr('class', 'overview')
      .attr('width', r.H * (size + pad) + 40)
      .attr('height', r.L * (size + pad) + 20);
    const w = this.window(r);
    const g = svg
      .selectAll<SVGGElement, (typeof cells)[0]>('g.cell')
      .data(cells, (d) => d.id)
      .join((enter) => {
        const e = enter.append('g').attr('class', 'cell').attr('tabindex', 0).attr('role', 'button');
        e.append('rect').attr('width', size).attr('height', size);
        e.append('image').attr('width', size - 4).attr('height', size - 4).attr('x', 2).attr('y', 2).attr('preserveAspectRatio', 'none');
        return e;
      })
      .attr('transform', (d) => `translate(${30 + d.h * (size + pad)},${d.l * (size + pad)})`)
      .attr('aria-label', (d) => `layer ${d.l} head ${d.h}`)
      .classed('focused', (d) => d.l === this.state.layer && d.h === this.state.head)
      .on('click', (_, d) => this.cb.focus(d.l, d.h))
      .on('keydown', (ev: KeyboardEvent, d) => this.keyNav(ev, d.l, d.h, r));
    g.select('image').attr('href', (d) => thumbnail(r, d.l, d.h, w));
    svg
      .selectAll('text.rowlabel')
      .data(d3.range(r.L))
      .join('text')
      .attr('class', 'rowlabel')
      .attr('x', 0)
      .attr('y', (l) => l * (size + pad) + size / 2)
      .attr('fill', 'currentColor')
      .text((l) => `L${l}`);
  }

  private keyNav(ev: KeyboardEvent, l: number, h: number, r: AnalysisRecord): void {
    const moves: Record<string, [number, number]> = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    if (ev.key === 'Enter' || ev.key === ' ') return this.cb.focus(l, h);
    const m = moves[ev.key];
    if (!m) return;
    ev.preventDefault();
    const nl = Math.max(0, Math.min(r.L - 1, l + m[0])), nh = Math.max(0, Math.min(r.H - 1, h + m[1]));
    this.cb.focus(nl, nh);
    const next = this.root.selectAll<SVGGElement, { l: number; h: number }>('g.cell').filter((d) => d.l === nl && d.h === nh).node();
    next?.focus();
  }

  /** The focused head's attention over the window's tokens, drawn on a canvas. */
  private matrix(r: AnalysisRecord): void {
    const w = this.window(r);
    const win = r.windows[w];
    const { layer, head } = this.state;
    const body = section(this.root, 'matrix', `Attention L${layer}.H${head} — window ${w + 1}/${r.windows.length} (rows: queries, columns: keys)`);
    const T = win.length;
    const px = Math.max(1, Math.min(4, Math.floor(720 / T)));
    const canvas = body
      .selectAll<HTMLCanvasElement, number>('canvas')
      .data([0])
      .join('canvas')
      .attr('class', 'matrix')
      .attr('width', T * px)
      .attr('height', T * px)
      .node()!;
    const ctx = canvas.getContext('2d')!;
    const a = win.attn[layer];
    const img = ctx.createImageData(T * px, T * px);
    const [br, bg, bb] = rgbOf(cssVar('--vscode-editor-background', '#1e1e1e'));
    const [hr, hg, hb] = rgbOf(cssVar('--vscode-charts-orange', '#d18616'));
    for (let q = 0; q < T; q++) {
      for (let k = 0; k < T; k++) {
        const v = a ? Math.sqrt(a[(head * T + q) * T + k]) : 0; // sqrt: small weights stay visible
        for (let dy = 0; dy < px; dy++) {
          for (let dx = 0; dx < px; dx++) {
            const o = ((q * px + dy) * T * px + k * px + dx) * 4;
            img.data[o] = br + (hr - br) * v;
            img.data[o + 1] = bg + (hg - bg) * v;
            img.data[o + 2] = bb + (hb - bb) * v;
            img.data[o + 3] = 255;
          }
        }
      }
    }
    ctx.putImageData(img, 0, 0);
    const sel = cssVar('--vscode-focusBorder', '#007fd4');
    ctx.strokeStyle = sel;
    if (this.state.query !== null && r.windowOf(this.state.query) === w) ctx.strokeRect(0, (this.state.query - win.start) * px, T * px, px);
    if (this.state.key !== null && r.windowOf(this.state.key) === w) ctx.strokeRect((this.state.key - win.start) * px, 0, px, T * px);
    const at = (ev: MouseEvent) => {
      const rect = canvas.getBoundingClientRect();
      const q = Math.floor(((ev.clientY - rect.top) / rect.height) * T), k = Math.floor(((ev.clientX - rect.left) / rect.width) * T);
      return { q: Math.max(0, Math.min(T - 1, q)), k: Math.max(0, Math.min(T - 1, k)) };
    };
    d3.select(canvas)
      .on('mousemove', (ev: MouseEvent) => {
        const { q, k } = at(ev);
        const p = a ? a[(head * T + q) * T + k] : NaN;
        tooltip(`${showToken(r.tokens[win.start + q].text)} → ${showToken(r.tokens[win.start + k].text)}  p=${fmt(p, 4)}`, ev);
      })
      .on('mouseleave', () => tooltip(null))
      .on('click', (ev: MouseEvent) => {
        const { q, k } = at(ev);
        this.cb.selectToken(win.start + (ev.shiftKey ? k : q), ev.shiftKey ? 'key' : 'query');
      });
    body.selectAll('p.hint').data([0]).join('p').attr('class', 'hint').text(a ? 'Click a row to select that query in the editor; shift-click selects a key.' : 'Attention maps were not sent for this layer.');
  }

  /** Heads × tokens strip of a per-head signal (loraRel, gate, …) for the focused layer, and head-scoped signals (loraFro) per head. */
  private lora(r: AnalysisRecord): void {
    const specs = r.headTokenSignals();
    const spec = specs.find((s) => s.name === this.state.loraMetric) ?? specs[0];
    const body = section(this.root, 'lora', spec ? `${spec.label} — layer ${this.state.layer} (${spec.name})` : 'Adaptive signals');
    if (!spec) {
      body.selectAll('*').remove();
      body.append('p').attr('class', 'hint').text('This model reports no per-head adaptive signal.');
      return;
    }
    body.selectAll('p.hint').remove();
    const { layer } = this.state;
    const N = r.N, H = r.H;
    const at = (h: number, t: number) => r.signalAt(spec.name, t, layer, h);
    let max = 0;
    for (let h = 0; h < H; h++) for (let t = 0; t < N; t++) max = Math.max(max, at(h, t) || 0);
    const color = heatScale(max);
    const cw = Math.max(1, Math.min(6, Math.floor(900 / N))), ch = 12;
    const canvas = body.selectAll<HTMLCanvasElement, number>('canvas.strip').data([0]).join('canvas').attr('class', 'strip').attr('width', N * cw).attr('height', H * ch).node()!;
    const ctx = canvas.getContext('2d')!;
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < N; t++) {
        ctx.fillStyle = color(at(h, t));
        ctx.fillRect(t * cw, h * ch, cw, ch - 1);
      }
    }
    d3.select(canvas)
      .on('mousemove', (ev: MouseEvent) => {
        const rect = canvas.getBoundingClientRect();
        const t = Math.floor(((ev.clientX - rect.left) / rect.width) * N), h = Math.floor(((ev.clientY - rect.top) / rect.height) * H);
        if (t >= 0 && t < N && h >= 0 && h < H) tooltip(`H${h} ${showToken(r.tokens[t].text)}: ${fmt(at(h, t), 4)}`, ev);
      })
      .on('mouseleave', () => tooltip(null))
      .on('click', (ev: MouseEvent) => {
        const rect = canvas.getBoundingClientRect();
        this.cb.selectToken(Math.floor(((ev.clientX - rect.left) / rect.width) * N), 'query');
      });
    const headSpec = r.specs.find((s) => s.scope === 'head');
    const fro = headSpec ? r.headSignal(headSpec.name, layer, this.window(r)) : null;
    const bars = fro ? Array.from(fro, (v, h) => ({ h, v })) : [];
    const width = 260, bh = 14;
    const x = d3.scaleLinear().domain([0, d3.max(bars, (b) => b.v) || 1]).range([0, width - 90]);
    const svg = body.selectAll<SVGSVGElement, number>('svg.fro').data([0]).join('svg').attr('class', 'fro').attr('width', width).attr('height', bars.length * (bh + 2) + 4);
    const g = svg.selectAll<SVGGElement, { h: number; v: number }>('g.bar').data(bars, (d) => d.h).join((e) => {
      const gg = e.append('g').attr('class', 'bar');
      gg.append('rect').attr('height', bh).attr('x', 40);
      gg.append('text').attr('class', 'label').attr('y', bh - 3).attr('fill', 'currentColor');
      gg.append('text').attr('class', 'value').attr('y', bh - 3).attr('fill', 'currentColor');
      return gg;
    });
    g.attr('transform', (d) => `translate(0,${d.h * (bh + 2)})`);
    g.select('rect').attr('width', (d) => x(d.v)).attr('fill', chartColors()[1]);
    g.select('text.label').text((d) => `H${d.h}`);
    g.select('text.value').attr('x', (d) => 44 + x(d.v)).text((d) => `${headSpec?.name ?? ''} ${fmt(d.v, 4)}`);
  }

  /** Latent codes (attention of every head to the key) of all query–key pairs, PCA to 2-D. */
  private latent(r: AnalysisRecord): void {
    const body = section(this.root, 'latent', `Latent codes of query–key pairs — layer ${this.state.layer} (PCA, coloured by dominant head)`);
    const w = r.windows[this.window(r)];
    const { layer } = this.state;
    const H = r.H, T = w.length;
    const attn = w.attn[layer];
    if (!attn || H < 2) {
      body.selectAll('*').remove();
      body.append('p').attr('class', 'hint').text(H < 2 ? 'A single head: latent codes are scalars.' : 'Attention maps were not sent for this layer.');
      return;
    }
    body.selectAll('p.hint').remove();
    const pts: { q: number; k: number; z: number[] }[] = [];
    const causal = this.data!.model.causal;
    const stride = Math.max(1, Math.floor((causal ? (T * T) / 2 : T * T) / 6000)); // at most ~6000 points
    let n = 0;
    for (let q = 0; q < T; q++) {
      for (let k = 0; k <= (causal ? q : T - 1); k++) {
        if (n++ % stride) continue;
        pts.push({ q, k, z: d3.range(H).map((h) => attn[(h * T + q) * T + k]) });
      }
    }
    const proj = pca2(pts.map((p) => p.z));
    const size = 300;
    const xs = d3.scaleLinear().domain(d3.extent(proj, (p) => p[0]) as [number, number]).nice().range([10, size - 10]);
    const ys = d3.scaleLinear().domain(d3.extent(proj, (p) => p[1]) as [number, number]).nice().range([size - 10, 10]);
    const colors = chartColors();
    const canvas = body.selectAll<HTMLCanvasElement, number>('canvas.pca').data([0]).join('canvas').attr('class', 'pca').attr('width', size).attr('height', size).node()!;
    const ctx = canvas.getContext('2d')!;
    ctx.clearRect(0, 0, size, size);
    const tree = d3.quadtree<number>().x((i) => xs(proj[i][0])).y((i) => ys(proj[i][1]));
    pts.forEach((p, i) => {
      const dom = d3.maxIndex(p.z);
      ctx.fillStyle = colors[dom % colors.length];
      ctx.globalAlpha = 0.55;
      ctx.fillRect(xs(proj[i][0]) - 1.5, ys(proj[i][1]) - 1.5, 3, 3);
      tree.add(i);
    });
    ctx.globalAlpha = 1;
    d3.select(canvas)
      .on('mousemove', (ev: MouseEvent) => {
        const [mx, my] = d3.pointer(ev);
        const i = tree.find(mx, my, 8);
        if (i === undefined) return tooltip(null);
        const p = pts[i];
        tooltip(`${showToken(r.tokens[w.start + p.q].text)} → ${showToken(r.tokens[w.start + p.k].text)}  z=[${p.z.map((v) => v.toFixed(2)).join(', ')}]`, ev);
      })
      .on('mouseleave', () => tooltip(null));
    const legend = body.selectAll<HTMLDivElement, number>('div.legend').data([0]).join('div').attr('class', 'legend');
    legend
      .selectAll('span')
      .data(d3.range(H))
      .join('span')
      .style('color', (h) => colors[h % colors.length])
      .text((h) => `■ H${h} `);
  }

  /** Per-token NLL and causality leak. */
  private strips(r: AnalysisRecord): void {
    const body = section(this.root, 'strips', 'Per token: NLL and causality audit');
    const rows: { id: string; label: string; values: Float32Array | null; note: string }[] = [
      { id: 'nll', label: 'NLL', values: r.nll, note: 'next-token negative log-likelihood (nats)' },
      {
        id: 'leak',
        label: 'leak',
        values: r.leak,
        note: "max |logits_t(window) − logits_t(prefix ending at t)| at sampled positions: a-gpt's hypernetwork mean-pools the whole window, so a token's value update sees later tokens",
      },
    ];
    const N = r.N, cw = Math.max(1, Math.min(6, Math.floor(900 / N)));
    const divs = body
      .selectAll<HTMLDivElement, (typeof rows)[0]>('div.strip')
      .data(rows, (d) => d.id)
      .join((e) => {
        const d = e.append('div').attr('class', 'strip');
        d.append('span').attr('class', 'label');
        d.append('canvas');
        d.append('p').attr('class', 'hint');
        return d;
      });
    divs.select('span.label').text((d) => d.label);
    divs.select('p.hint').text((d) => (d.values ? d.note : `${d.label}: not measured for this model`));
    divs.each(function (d) {
      const canvas = d3.select(this).select<HTMLCanvasElement>('canvas').attr('width', N * cw).attr('height', 14).node()!;
      const ctx = canvas.getContext('2d')!;
      ctx.clearRect(0, 0, N * cw, 14);
      if (!d.values) return;
      const color = heatScale(d3.max(Array.from(d.values).filter(Number.isFinite)) ?? 1);
      for (let t = 0; t < N; t++) {
        ctx.fillStyle = color(d.values[t]);
        ctx.fillRect(t * cw, 0, cw, 14);
      }
    });
  }
}

/** A small data-URL thumbnail of one head's attention (max-pooled to ≤ 48×48). */
function thumbnail(r: AnalysisRecord, l: number, h: number, w: number): string {
  const win = r.windows[w];
  const a = win?.attn[l];
  const T = win?.length ?? 0;
  const S = Math.min(48, Math.max(1, T));
  const c = document.createElement('canvas');
  c.width = S;
  c.height = S;
  const ctx = c.getContext('2d')!;
  const [br, bg, bb] = rgbOf(cssVar('--vscode-editor-background', '#1e1e1e'));
  const [hr, hg, hb] = rgbOf(cssVar('--vscode-charts-blue', '#3794ff'));
  const img = ctx.createImageData(S, S);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      let v = 0;
      if (a) {
        for (let q = Math.floor((y * T) / S); q < Math.max(Math.floor(((y + 1) * T) / S), Math.floor((y * T) / S) + 1); q++) {
          for (let k = Math.floor((x * T) / S); k < Math.max(Math.floor(((x + 1) * T) / S), Math.floor((x * T) / S) + 1); k++) v = Math.max(v, a[(h * T + q) * T + k]);
        }
      }
      v = Math.sqrt(v);
      const o = (y * S + x) * 4;
      img.data[o] = br + (hr - br) * v;
      img.data[o + 1] = bg + (hg - bg) * v;
      img.data[o + 2] = bb + (hb - bb) * v;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return c.toDataURL();
}

/** Top-2 principal components (covariance H×H, power iteration with deflation). */
export function pca2(rows: number[][]): [number, number][] {
  if (!rows.length) return [];
  const H = rows[0].length;
  const mean = d3.range(H).map((j) => d3.mean(rows, (r) => r[j]) ?? 0);
  const cov = d3.range(H).map(() => new Array(H).fill(0));
  for (const r of rows) for (let i = 0; i < H; i++) for (let j = 0; j < H; j++) cov[i][j] += (r[i] - mean[i]) * (r[j] - mean[j]);
  const comps: number[][] = [];
  for (let c = 0; c < Math.min(2, H); c++) {
    let v = d3.range(H).map((i) => 1 / Math.sqrt(H) + (i === c ? 0.5 : 0));
    for (let it = 0; it < 100; it++) {
      const nv = d3.range(H).map((i) => d3.sum(d3.range(H), (j) => cov[i][j] * v[j]));
      const norm = Math.hypot(...nv) || 1;
      v = nv.map((x) => x / norm);
    }
    const lambda = d3.sum(d3.range(H), (i) => v[i] * d3.sum(d3.range(H), (j) => cov[i][j] * v[j]));
    for (let i = 0; i < H; i++) for (let j = 0; j < H; j++) cov[i][j] -= lambda * v[i] * v[j];
    comps.push(v);
  }
  while (comps.length < 2) comps.push(new Array(H).fill(0));
  return rows.map((r) => [d3.sum(d3.range(H), (i) => (r[i] - mean[i]) * comps[0][i]), d3.sum(d3.range(H), (i) => (r[i] - mean[i]) * comps[1][i])]);
}
