/**
 * The standalone HTML report (engine/analysis/report.ts writes the page: this bundle, the CSS and
 * the analysis as JSON inline, nothing fetched): the annotated text first, then the explorer's
 * views over the same analysis, with the report's own wording (there is no editor here).
 */
import * as d3 from 'd3';
import type { ExplorerData } from '../engine/protocol';
import { Explorer } from './lib/explorerViews';
import { defaultState } from './lib/state';

const el = document.getElementById('headlens-data');
const data = el ? (JSON.parse(el.textContent || 'null') as ExplorerData | null) : null;
const root = d3.select<HTMLElement, unknown>('#app');
root.append('h2').text(`Head Lens — ${data?.documentUri.split(/[\\/]/).pop() ?? 'analysis'}`);
if (data) {
  root
    .append('p')
    .attr('class', 'hint')
    .text(`${data.model.family} · ${data.model.path.split(/[\\/]/).pop()} · ${data.tokens.length} tokens. Hover a token for its head codes and predictions; click one to select it in every view.`);
}
const views = root.append('div').attr('class', 'views') as unknown as d3.Selection<HTMLElement, unknown, null, undefined>;
const explorer = new Explorer(views, defaultState(), {}, 'report');
if (data) explorer.setData(data);
else explorer.render();
