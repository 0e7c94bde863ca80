/** Standalone HTML report: the explorer views over the analysis embedded in the page. */
import * as d3 from 'd3';
import type { ExplorerData } from '../engine/protocol';
import { Explorer, type ExplorerState } from './lib/explorerViews';

const el = document.getElementById('headlens-data');
const data = el ? (JSON.parse(el.textContent || 'null') as ExplorerData | null) : null;
const state: ExplorerState = { layer: 0, head: 0, query: null, key: null, loraMetric: 'loraTok' };
const root = d3.select<HTMLElement, unknown>('#app');
root.append('h2').text(`Head Lens — ${data?.documentUri.split(/[\\/]/).pop() ?? 'analysis'}`);
const views = root.append('div').attr('class', 'views') as unknown as d3.Selection<HTMLElement, unknown, null, undefined>;
const explorer = new Explorer(views, state, {
  focus: (l, h) => {
    state.layer = l;
    state.head = h;
    explorer.render();
  },
  selectToken: (i, role) => {
    if (role === 'query') state.query = i;
    else state.key = i;
    explorer.render();
  },
});
if (data) explorer.setData(data);
else explorer.render();
