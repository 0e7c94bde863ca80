/**
 * The analysis in three lines: the model (layers × heads, kv heads with GQA), the tokens and
 * windows; mean NLL, time and runtime, the causality audit; what is focused and selected.
 */
import { fmt, section, showToken, type Root } from '../view';
import type { ExplorerView, ViewContext } from './context';

export class SummaryView implements ExplorerView {
  constructor(private readonly root: Root) {}

  update(ctx: ViewContext): void {
    const m = ctx.model, st = ctx.state, res = m.result;
    const body = section(this.root, 'summary', 'Analysis');
    const gqa = m.Hkv < m.H ? ` (${m.Hkv} kv heads, GQA)` : '';
    const tok = (i: number | null) => (i !== null && m.tokens[i] ? `#${i} ${showToken(m.tokens[i].text)}` : '');
    const lines = [
      `${m.model.family} · ${m.L} layers × ${m.H} heads${gqa} · ${m.N} tokens in ${m.windows.length} window(s)`,
      res ? `mean NLL ${fmt(res.meanNll)} · ${res.elapsedMs} ms on ${res.backend}` + (res.maxLeak !== null ? ` · max causality leak ${fmt(res.maxLeak, 4)}` : '') : '',
      `focus L${st.layer}.H${st.head}` + (st.query !== null ? ` · query ${tok(st.query)}` : '') + (st.key !== null ? ` · key ${tok(st.key)}` : ''),
    ];
    body.selectAll('p.line').data(lines).join('p').attr('class', 'line').text((x) => x);
    if (m.model.note) body.selectAll('p.note').data([m.model.note]).join('p').attr('class', 'note hint').text((x) => x);
  }
}
