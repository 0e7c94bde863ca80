/**
 * The latent-code map (Schug et al.; methods.md §1.5, §1.8): every token's code at a chosen layer,
 * z[l][t][k*] — the attention of each head to the token's most-attended key, an H-vector — put in
 * 2-D by PCA, one point per token, coloured by the dominant head (argmax of the code), by the
 * token's class, or by any per-token signal. Hover names the token, its key and the code; click
 * selects the token. The probe panel (probeView.ts) reads the same codes.
 */
import * as d3 from 'd3';
import type { AnalysisModel } from '../model';
import { pca2, type Pca } from '../probe';
import type { LatentColour } from '../state';
import { chartColors, cssVar, headPalette, scaleForValues, type ValueScale } from '../theme';
import { TOKEN_CLASSES } from '../tokenClass';
import { fmt, section, selectInput, showToken, tokenLabel, tooltip, type Body, type Root } from '../view';
import type { ExplorerView, ViewContext } from './context';

const SIZE = 380;

/** The tokens with a code at a layer and their codes as (n, H) rows. */
export function latentRows(m: AnalysisModel, layer: number): { tokens: Int32Array; X: Float64Array } {
  const idx: number[] = [];
  for (let t = 0; t < m.N; t++) {
    if (!m.hasLatent[layer * m.N + t]) continue;
    const code = m.latent(layer, t).code;
    if (code.every(Number.isFinite)) idx.push(t);
  }
  const X = new Float64Array(idx.length * m.H);
  idx.forEach((t, i) => X.set(m.latent(layer, t).code, i * m.H));
  return { tokens: Int32Array.from(idx), X };
}

export class LatentView implements ExplorerView {
  private cache: { model: AnalysisModel; layer: number; tokens: Int32Array; X: Float64Array; pca: Pca } | null = null;

  constructor(private readonly root: Root) {}

  update(ctx: ViewContext): void {
    const m = ctx.model, st = ctx.state;
    const layer = st.latentLayer !== null && st.latentLayer < m.L ? st.latentLayer : st.layer;
    const body = section(this.root, 'latent', `Latent codes z[l][t][k*] — layer ${layer} (PCA of the ${m.H}-dimensional codes, one point per token)`);
    this.controls(body, ctx, layer);
    const data = this.points(m, layer);
    const { colour, legend } = this.colouring(ctx, data.tokens, data.X, layer);
    this.draw(body, ctx, data, colour, layer);
    const shares = m.H > 1 ? `PC1 ${(data.pca.explained[0] * 100).toFixed(1)} %, PC2 ${(data.pca.explained[1] * 100).toFixed(1)} % of the variance.` : 'A single head: the code is a scalar (x); y spreads the tokens in text order.';
    body.selectAll('p.hint').data([0]).join('p').attr('class', 'hint').text(`${data.tokens.length} tokens. ${shares}`);
    body
      .selectAll<HTMLDivElement, number>('div.legend')
      .data([0])
      .join('div')
      .attr('class', 'legend')
      .selectAll<HTMLSpanElement, { label: string; color: string }>('span')
      .data(legend, (d) => d.label)
      .join('span')
      .style('color', (d) => d.color)
      .text((d) => `■ ${d.label}`);
  }

  private points(m: AnalysisModel, layer: number) {
    if (this.cache?.model === m && this.cache.layer === layer) return this.cache;
    const { tokens, X } = latentRows(m, layer);
    const pca = pca2(X, tokens.length, m.H);
    if (m.H < 2) tokens.forEach((t, i) => (pca.coords[i * 2 + 1] = t / Math.max(1, m.N)));
    this.cache = { model: m, layer, tokens, X, pca };
    return this.cache;
  }

  private controls(body: Body, ctx: ViewContext, layer: number): void {
    const m = ctx.model, st = ctx.state;
    const bar = body.selectAll<HTMLDivElement, number>('div.controls').data([0]).join('div').attr('class', 'controls') as unknown as Root;
    const change = (f: () => void) => {
      f();
      ctx.cb.persist();
      ctx.rerender();
    };
    selectInput(bar, 'latent-layer', d3.range(m.L).map((l) => ({ value: String(l), label: `layer ${l}` })), String(layer), (v) => change(() => (st.latentLayer = Number(v))));
    const colourOptions: { value: LatentColour; label: string }[] = [
      { value: 'head', label: 'colour: dominant head' },
      { value: 'class', label: 'colour: token class' },
      { value: 'signal', label: 'colour: a signal' },
    ];
    selectInput(bar, 'latent-colour', colourOptions, st.latentColour, (v) => change(() => (st.latentColour = v as LatentColour)));
    const tracks = m.allTracks();
    const signal = tracks.some((t) => t.spec.name === st.latentSignal) ? st.latentSignal : tracks[0]?.spec.name ?? '';
    selectInput(bar, 'latent-signal', tracks.map((t) => ({ value: t.spec.name, label: `${t.spec.label} (${t.spec.name})` })), signal, (v) => change(() => (st.latentSignal = v))).classed(
      'hidden',
      st.latentColour !== 'signal',
    );
  }

  /** A colour per point and the legend for it. */
  private colouring(ctx: ViewContext, tokens: Int32Array, X: Float64Array, layer: number): { colour: (i: number) => string; legend: { label: string; color: string }[] } {
    const m = ctx.model, st = ctx.state;
    if (st.latentColour === 'class') {
      const classes = ctx.classes(), palette = chartColors();
      const colourOf = new Map(TOKEN_CLASSES.map((c, i) => [c, palette[i % palette.length]]));
      return { colour: (i) => colourOf.get(classes[tokens[i]])!, legend: TOKEN_CLASSES.map((c) => ({ label: c, color: colourOf.get(c)! })) };
    }
    if (st.latentColour === 'signal') {
      const tracks = m.allTracks();
      const track = tracks.find((t) => t.spec.name === st.latentSignal) ?? tracks[0];
      if (track) {
        const values = Float64Array.from(tokens, (t) => m.at(track, layer, m.rowOf(track, st.head), t));
        const scale: ValueScale = scaleForValues(values, track.spec.range, !!track.spec.diverging);
        const perHead = track.rows > 1 ? ` of H${st.head}` : '';
        return {
          colour: (i) => scale.css(values[i]),
          legend: [
            { label: `${track.spec.name}${perHead} ${fmt(scale.domain[0], 3)}`, color: scale.css(scale.domain[0]) },
            { label: `${fmt(scale.domain[1], 3)}`, color: scale.css(scale.domain[1]) },
          ],
        };
      }
    }
    const palette = headPalette(m.H), H = m.H;
    return {
      colour: (i) => palette[d3.maxIndex(X.subarray(i * H, (i + 1) * H))],
      legend: d3.range(H).map((h) => ({ label: `H${h}`, color: palette[h] })),
    };
  }

  private draw(body: Body, ctx: ViewContext, data: { tokens: Int32Array; X: Float64Array; pca: Pca }, colour: (i: number) => string, layer: number): void {
    const m = ctx.model, { tokens, pca } = data, n = tokens.length;
    const xs = d3.scaleLinear().domain(extent(pca.coords, 0, n)).nice().range([10, SIZE - 10]);
    const ys = d3.scaleLinear().domain(extent(pca.coords, 1, n)).nice().range([SIZE - 10, 10]);
    const canvas = body.selectAll<HTMLCanvasElement, number>('canvas.pca').data([0]).join('canvas').attr('class', 'pca').attr('width', SIZE).attr('height', SIZE).node()!;
    const g = canvas.getContext('2d')!;
    g.fillStyle = cssVar('--vscode-editor-background', '#1e1e1e');
    g.fillRect(0, 0, SIZE, SIZE);
    const tree = d3.quadtree<number>().x((i) => xs(pca.coords[i * 2])).y((i) => ys(pca.coords[i * 2 + 1]));
    g.globalAlpha = 0.65;
    for (let i = 0; i < n; i++) {
      g.fillStyle = colour(i);
      g.fillRect(xs(pca.coords[i * 2]) - 1.5, ys(pca.coords[i * 2 + 1]) - 1.5, 3, 3);
      tree.add(i);
    }
    g.globalAlpha = 1;
    const sel = ctx.state.query !== null ? tokens.indexOf(ctx.state.query) : -1;
    if (sel >= 0) {
      g.strokeStyle = cssVar('--vscode-focusBorder', '#007fd4');
      g.lineWidth = 2;
      g.beginPath();
      g.arc(xs(pca.coords[sel * 2]), ys(pca.coords[sel * 2 + 1]), 6, 0, 2 * Math.PI);
      g.stroke();
    }
    const near = (ev: MouseEvent) => {
      const [mx, my] = d3.pointer(ev, canvas);
      return tree.find(mx, my, 8);
    };
    d3.select(canvas)
      .on('mousemove', (ev: MouseEvent) => {
        const i = near(ev);
        if (i === undefined) return tooltip(null);
        const t = tokens[i], { key, code } = m.latent(layer, t);
        const cls = ctx.classes()[t];
        tooltip(`${tokenLabel(t, m.tokens[t].text)} → k* ${tokenLabel(key, m.tokens[key]?.text ?? '')}  (${cls})\nz = [${Array.from(code, (v) => v.toFixed(3)).join(', ')}]`, ev);
      })
      .on('mouseleave', () => tooltip(null))
      .on('click', (ev: MouseEvent) => {
        const i = near(ev);
        if (i !== undefined) ctx.cb.selectToken(tokens[i], 'query');
      });
    canvas.setAttribute('aria-label', `latent codes of ${n} tokens at layer ${layer}; the selected token ${sel >= 0 ? showToken(m.tokens[tokens[sel]].text) : 'is not shown'}`);
  }
}

function extent(coords: Float64Array, axis: number, n: number): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = coords[i * 2 + axis];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) return [-1, 1];
  return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
}
