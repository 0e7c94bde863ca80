/**
 * The probe panel: how much of a label each layer's latent codes carry, as Schug et al. read
 * subtasks out of them (methods.md §1.5). The label per token is its class, or whether its text
 * matches a regular expression; the probe is ridge regression (R²) or multinomial logistic
 * regression (accuracy, beside the majority-class baseline) on a seeded 50/50 split of the tokens
 * (probe.ts). One row and one bar per layer; layers are fitted one per task so the view stays
 * responsive, and a newer fit cancels an older one.
 */
import * as d3 from 'd3';
import type { AnalysisModel } from '../model';
import { logisticProbe, ridgeProbe, splitHalves } from '../probe';
import type { ProbeKind, ProbeLabel } from '../state';
import { chartColors } from '../theme';
import { TOKEN_CLASSES } from '../tokenClass';
import { fmt, section, selectInput, type Body, type Root } from '../view';
import type { ExplorerView, ViewContext } from './context';
import { latentRows } from './latent';

export interface ProbeRow {
  layer: number;
  value: number;
  baseline: number;
  nTrain: number;
  nTest: number;
}

/** Per token: the label index, or −1 without a label; and the number of labels. */
export function labelsOf(ctx: ViewContext, kind: ProbeLabel, regex: string): { labels: Int32Array; classes: number; names: string[] } {
  const m = ctx.model;
  if (kind === 'regex') {
    const re = new RegExp(regex, 'u'); // throws on a bad pattern: the caller reports it
    return { labels: Int32Array.from(m.tokens, (t) => (re.test(t.text) ? 1 : 0)), classes: 2, names: ['no match', 'match'] };
  }
  const classes = ctx.classes();
  return { labels: Int32Array.from(classes, (c) => TOKEN_CLASSES.indexOf(c)), classes: TOKEN_CLASSES.length, names: [...TOKEN_CLASSES] };
}

/** Fit one layer: the codes of the tokens that have one, their labels compacted to those present. */
export function probeLayer(m: AnalysisModel, layer: number, tokenLabels: Int32Array, kind: ProbeKind): ProbeRow {
  const { tokens, X } = latentRows(m, layer);
  const present = [...new Set(Array.from(tokens, (t) => tokenLabels[t]))].sort((a, b) => a - b);
  const compact = new Map(present.map((c, i) => [c, i]));
  const labels = Int32Array.from(tokens, (t) => compact.get(tokenLabels[t])!);
  const split = splitHalves(tokens.length, 1);
  const base = { layer, nTrain: split.train.length, nTest: split.test.length };
  if (present.length < 2 || split.test.length < 2) return { ...base, value: NaN, baseline: NaN };
  if (kind === 'ridge') return { ...base, value: ridgeProbe(X, m.H, labels, present.length, split, 1), baseline: 0 };
  const r = logisticProbe(X, m.H, labels, present.length, split, { iterations: 300 });
  return { ...base, value: r.accuracy, baseline: r.baseline };
}

export class ProbeView implements ExplorerView {
  private run = 0;
  private rows: ProbeRow[] = [];
  private status = '';
  private forModel: AnalysisModel | null = null;

  constructor(private readonly root: Root) {}

  update(ctx: ViewContext): void {
    const st = ctx.state;
    if (ctx.model !== this.forModel) {
      this.forModel = ctx.model;
      this.rows = [];
      this.status = '';
      this.run++;
    }
    const body = section(this.root, 'probe', 'Probe: what the latent codes carry, per layer');
    const bar = body.selectAll<HTMLDivElement, number>('div.controls').data([0]).join('div').attr('class', 'controls') as unknown as Root;
    const kinds = [
      { value: 'ridge', label: 'ridge regression (R², λ = 1)' },
      { value: 'logistic', label: 'logistic regression (accuracy)' },
    ];
    selectInput(bar, 'probe-kind', kinds, st.probeKind, (v) => {
      st.probeKind = v as ProbeKind;
      ctx.cb.persist();
    });
    const labels = [
      { value: 'class', label: 'label: token class' },
      { value: 'regex', label: 'label: token text matches' },
    ];
    selectInput(bar, 'probe-label', labels, st.probeLabel, (v) => {
      st.probeLabel = v as ProbeLabel;
      ctx.cb.persist();
      ctx.rerender();
    });
    bar
      .selectAll<HTMLInputElement, number>('input.probe-regex')
      .data([0])
      .join('input')
      .attr('class', 'probe-regex')
      .attr('type', 'text')
      .attr('spellcheck', 'false')
      .attr('title', 'a regular expression over the token text: matching tokens are label 1')
      .classed('hidden', st.probeLabel !== 'regex')
      .property('value', st.probeRegex)
      .on('change', function () {
        st.probeRegex = (this as HTMLInputElement).value;
        ctx.cb.persist();
      });
    bar.selectAll<HTMLButtonElement, number>('button.probe-fit').data([0]).join('button').attr('class', 'probe-fit').text('Fit').on('click', () => void this.fit(ctx, body));
    this.show(body, ctx);
  }

  /** Fit every layer, one per task; a newer fit (or a new analysis) cancels this one. */
  private async fit(ctx: ViewContext, body: Body): Promise<void> {
    const run = ++this.run, st = ctx.state, m = ctx.model;
    let labels: Int32Array;
    try {
      labels = labelsOf(ctx, st.probeLabel, st.probeRegex).labels;
    } catch (e) {
      this.status = `Not a regular expression: ${(e as Error).message}`;
      this.rows = [];
      return this.show(body, ctx);
    }
    this.rows = [];
    for (let l = 0; l < m.L; l++) {
      this.status = `fitting layer ${l + 1} of ${m.L}…`;
      this.show(body, ctx);
      await new Promise((r) => setTimeout(r, 0));
      if (run !== this.run) return;
      this.rows.push(probeLayer(m, l, labels, st.probeKind));
    }
    const what = st.probeLabel === 'regex' ? `tokens matching /${st.probeRegex}/` : 'token class';
    this.status = this.rows.every((r) => Number.isNaN(r.value))
      ? `The label (${what}) has a single value on these tokens: nothing to predict.`
      : `${st.probeKind === 'ridge' ? 'Ridge R²' : 'Logistic accuracy'} of ${what} from each layer's codes, on the test half of a seeded 50/50 split.`;
    this.show(body, ctx);
  }

  private show(body: Body, ctx: ViewContext): void {
    const ridge = ctx.state.probeKind === 'ridge';
    body.selectAll('p.probe-status').data([0]).join('p').attr('class', 'probe-status hint').text(this.status || 'Choose a label and press Fit.');
    const table = body.selectAll<HTMLTableElement, number>('table.probe-results').data([0]).join('table').attr('class', 'probe-results');
    table
      .selectAll('thead')
      .data([0])
      .join('thead')
      .selectAll('tr')
      .data([0])
      .join('tr')
      .selectAll('th')
      .data(['layer', ridge ? 'R²' : 'accuracy', ridge ? '' : 'baseline', 'train / test'])
      .join('th')
      .text((d) => d);
    const rows = table
      .selectAll('tbody')
      .data([0])
      .join('tbody')
      .selectAll<HTMLTableRowElement, ProbeRow>('tr')
      .data(this.rows, (d) => String(d.layer))
      .join('tr')
      .attr('data-layer', (d) => d.layer)
      .attr('data-value', (d) => String(d.value));
    rows
      .selectAll<HTMLTableCellElement, string>('td')
      .data((d) => [`L${d.layer}`, fmt(d.value, 4), ridge ? '' : fmt(d.baseline, 3), `${d.nTrain} / ${d.nTest}`])
      .join('td')
      .attr('class', (_, i) => (i === 1 ? 'value' : null))
      .text((d) => d);
    this.chart(body, ridge);
  }

  private chart(body: Body, ridge: boolean): void {
    const bh = 12, width = 320, left = 36;
    const x = d3.scaleLinear().domain([ridge ? Math.min(0, d3.min(this.rows, (r) => r.value) ?? 0) : 0, 1]).range([left, width - 40]).clamp(true);
    const svg = body.selectAll<SVGSVGElement, number>('svg.probe-chart').data([0]).join('svg').attr('class', 'probe-chart').attr('width', width).attr('height', this.rows.length * (bh + 3) + 4);
    const g = svg
      .selectAll<SVGGElement, ProbeRow>('g.bar')
      .data(this.rows, (d) => String(d.layer))
      .join((e) => {
        const gg = e.append('g').attr('class', 'bar');
        gg.append('text').attr('class', 'label').attr('y', bh - 2).attr('fill', 'currentColor');
        gg.append('rect').attr('height', bh);
        gg.append('line').attr('class', 'baseline').attr('y1', 0).attr('y2', bh);
        gg.append('text').attr('class', 'value').attr('y', bh - 2).attr('fill', 'currentColor');
        return gg;
      })
      .attr('transform', (d) => `translate(0,${d.layer * (bh + 3)})`);
    g.select('text.label').text((d) => `L${d.layer}`);
    g.select('rect')
      .attr('x', x(0))
      .attr('width', (d) => (Number.isFinite(d.value) ? Math.max(0, x(d.value) - x(0)) : 0))
      .attr('fill', chartColors()[0]);
    g.select('line.baseline')
      .attr('x1', (d) => x(d.baseline || 0))
      .attr('x2', (d) => x(d.baseline || 0))
      .attr('stroke', ridge ? 'none' : 'currentColor');
    g.select('text.value')
      .attr('x', (d) => (Number.isFinite(d.value) ? Math.max(x(0), x(d.value)) + 4 : x(0) + 4))
      .text((d) => fmt(d.value, 3));
  }
}
