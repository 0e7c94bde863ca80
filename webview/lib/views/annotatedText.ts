/**
 * The analysed text itself, each token's background coloured by a chosen signal (per-head signals
 * at the focused layer and head), with a legend, and on hover what the editor's hover shows: the
 * token, its NLL and top-k next-token predictions, the causality leak, the head codes (a layer ×
 * head table of attention max, every per-head signal, entropy) and the latent code to the
 * most-attended key per layer. The standalone report opens with it.
 */
import * as d3 from 'd3';
import type { AnalysisModel, SignalTrack } from '../model';
import { scaleForValues, type ValueScale } from '../theme';
import { fmt, section, selectInput, showToken, tooltip, type Body, type Root } from '../view';
import type { ExplorerView, ViewContext } from './context';

export class AnnotatedTextView implements ExplorerView {
  constructor(private readonly root: Root) {}

  update(ctx: ViewContext): void {
    const m = ctx.model, st = ctx.state;
    const tracks = m.allTracks();
    const track = tracks.find((t) => t.spec.name === st.textSignal) ?? tracks.find((t) => t.spec.mechanism !== 'attention' && t.spec.name !== 'nll') ?? tracks[0];
    const where = track && (track.rows > 1 || track.layers > 1) ? ` at L${st.layer}${track.rows > 1 ? `.H${st.head}` : ''}` : '';
    const body = section(this.root, 'text', `Text — coloured by ${track ? `${track.spec.label}${where}` : 'nothing'}`);
    const bar = body.selectAll<HTMLDivElement, number>('div.controls').data([0]).join('div').attr('class', 'controls') as unknown as Root;
    bar.selectAll('label').data([0]).join('label').text('colour by: ');
    selectInput(bar, 'text-signal', tracks.map((t) => ({ value: t.spec.name, label: `${t.spec.label} (${t.spec.name})` })), track?.spec.name ?? '', (v) => {
      st.textSignal = v;
      ctx.cb.persist();
      ctx.rerender();
    });
    const values = track ? Float32Array.from(m.tokens, (_, t) => m.at(track, st.layer, m.rowOf(track, st.head), t)) : new Float32Array(m.N).fill(NaN);
    const scale = scaleForValues(values, track?.spec.range, !!track?.spec.diverging);
    legend(body, scale, track);
    const text = body.selectAll<HTMLDivElement, number>('div.annotated').data([0]).join('div').attr('class', 'annotated');
    text
      .selectAll<HTMLSpanElement, number>('span.tok')
      .data(d3.range(m.N), (d) => String(d))
      .join('span')
      .attr('class', 'tok')
      .attr('data-index', (t) => t)
      .classed('selected', (t) => t === st.query)
      .style('background-color', (t) => (Number.isFinite(values[t]) ? translucent(scale.css(values[t])) : null))
      .text((t) => m.tokens[t].text)
      .on('mouseenter', (ev: MouseEvent, t) => tooltip(tokenCard(m, t), ev))
      .on('mouseleave', () => tooltip(null))
      .on('click', (_, t) => ctx.cb.selectToken(t, 'query'));
  }
}

function translucent(color: string): string {
  const c = d3.color(color);
  if (!c) return color;
  c.opacity = 0.7;
  return c.formatRgb();
}

function legend(body: Body, scale: ValueScale, track: SignalTrack | undefined): void {
  const div = body.selectAll<HTMLDivElement, number>('div.legend.scale').data([0]).join('div').attr('class', 'legend scale');
  const stops = d3.range(0, 1.0001, 0.1).map((u) => scale.css(scale.domain[0] + u * (scale.domain[1] - scale.domain[0])));
  div.selectAll('span.lo').data([0]).join('span').attr('class', 'lo').text(fmt(scale.domain[0], 3));
  div.selectAll('span.ramp').data([0]).join('span').attr('class', 'ramp').style('background', `linear-gradient(to right, ${stops.join(', ')})`);
  div.selectAll('span.hi').data([0]).join('span').attr('class', 'hi').text(fmt(scale.domain[1], 3));
  div
    .selectAll('span.what')
    .data([0])
    .join('span')
    .attr('class', 'what')
    .text(track ? `${track.spec.label}${track.spec.unit ? ` (${track.spec.unit})` : ''}${scale.diverging ? ', diverging around 0' : ''} — ${track.spec.description}` : '');
}

/** What the editor's hover shows for token t, as a small document fragment. */
export function tokenCard(m: AnalysisModel, t: number): HTMLElement {
  const card = document.createElement('div');
  card.className = 'token-card';
  const tok = m.tokens[t];
  line(card, 'head', `token #${t} ${showToken(tok.text)} · id ${tok.id}`);
  const nll = m.track('nll') ? m.valueFor('nll', 0, 0, t) : NaN;
  const top = m.top(t).slice(0, 5);
  const what = m.model.causal ? 'next token' : 'token';
  const preds = [Number.isFinite(nll) ? `NLL of the ${what} ${fmt(nll, 3)}` : '', top.length ? `top ${top.length}: ${top.map((p) => `${showToken(p.text)} ${(p.p * 100).toFixed(1)} %`).join(' · ')}` : ''];
  const leak = m.track('leak') ? m.valueFor('leak', 0, 0, t) : NaN;
  if (Number.isFinite(leak)) preds.push(`causality leak ${fmt(leak, 4)}`);
  line(card, 'preds', preds.filter(Boolean).join(' — '));
  headCodes(card, m, t);
  latentCodes(card, m, t);
  return card;
}

function line(parent: HTMLElement, cls: string, text: string): void {
  if (!text) return;
  const p = document.createElement('div');
  p.className = cls;
  p.textContent = text;
  parent.appendChild(p);
}

/** The layer × head table: attention max / each per-head signal / entropy. */
function headCodes(card: HTMLElement, m: AnalysisModel, t: number): void {
  const extra = m.headTracks().filter((s) => s.spec.mechanism !== 'attention');
  line(card, 'caption', `Head codes — attention max${extra.map((s) => ` / ${s.spec.name}`).join('')} / entropy`);
  const table = document.createElement('table');
  table.className = 'head-codes';
  const head = table.insertRow();
  head.insertCell().textContent = '';
  for (let h = 0; h < m.H; h++) head.insertCell().textContent = `H${h}`;
  for (let l = 0; l < m.L; l++) {
    const row = table.insertRow();
    row.insertCell().textContent = `L${l}`;
    for (let h = 0; h < m.H; h++) {
      const parts = [m.valueFor('attnMax', l, h, t), ...extra.map((s) => m.valueFor(s.spec.name, l, h, t)), m.valueFor('entropy', l, h, t)];
      row.insertCell().textContent = parts.map((v) => fmt(v, 2)).join('\u00a0/\u00a0');
    }
  }
  card.appendChild(table);
}

/** Per layer: the most-attended key and the code z = (attention of each head) to it. */
function latentCodes(card: HTMLElement, m: AnalysisModel, t: number): void {
  line(card, 'caption', 'Latent code z = (attention of each head) to the most-attended key');
  const table = document.createElement('table');
  table.className = 'latent-codes';
  for (let l = 0; l < m.L; l++) {
    if (!m.hasLatent[l * m.N + t]) continue;
    const { key, code } = m.latent(l, t);
    const row = table.insertRow();
    row.insertCell().textContent = `L${l}`;
    row.insertCell().textContent = `#${key} ${showToken(m.tokens[key]?.text ?? '')}`;
    row.insertCell().textContent = `[${Array.from(code, (v) => v.toFixed(3)).join(', ')}]`;
  }
  card.appendChild(table);
}
