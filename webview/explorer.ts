/** Attention Explorer panel (webview entry): state survives hide/show through setState. */
import * as d3 from 'd3';
import type { ExplorerData } from '../engine/protocol';
import { Explorer, type ExplorerState } from './lib/explorerViews';
import { getTransport, onHostMessage } from './lib/transport';
import { exportView } from './lib/exporter';

const transport = getTransport();
const saved = transport.getState<{ view: ExplorerState; data: ExplorerData | null }>();
const state: ExplorerState = saved?.view ?? { layer: 0, head: 0, query: null, key: null, loraMetric: 'loraTok' };
const root = d3.select<HTMLElement, unknown>('#app');

const controls = root.append('div').attr('class', 'controls');
controls.append('label').text('LoRA strip: ');
const metricSelect = controls.append('select').attr('id', 'lora-metric');
metricSelect.selectAll('option').data(['loraTok', 'loraRel']).join('option').attr('value', (d) => d).text((d) => d);
metricSelect.property('value', state.loraMetric).on('change', function () {
  state.loraMetric = (this as HTMLSelectElement).value as ExplorerState['loraMetric'];
  persist();
  explorer.render();
});
const views = root.append('div').attr('class', 'views') as unknown as d3.Selection<HTMLElement, unknown, null, undefined>;

let data: ExplorerData | null = saved?.data ?? null;
function persist(): void {
  transport.setState({ view: state, data });
}

const explorer = new Explorer(views, state, {
  focus: (layer, head) => {
    state.layer = layer;
    state.head = head;
    persist();
    explorer.render();
    transport.post({ type: 'explorer/focus', layer, head });
  },
  selectToken: (index, role) => {
    if (role === 'query') state.query = index;
    else state.key = index;
    persist();
    explorer.render();
    transport.post({ type: 'explorer/selectToken', tokenIndex: index, role });
  },
});

onHostMessage((m) => {
  try {
    if (m.type === 'explorer/data') {
      data = m.data;
      explorer.setData(m.data);
      persist();
    } else if (m.type === 'explorer/focus') {
      state.layer = m.layer;
      state.head = m.head;
      persist();
      explorer.render();
    } else if (m.type === 'explorer/selection') {
      if (m.role === 'query') state.query = m.tokenIndex;
      else state.key = m.tokenIndex;
      persist();
      explorer.render();
    } else if (m.type === 'explorer/clear') {
      data = null;
      explorer.clear();
      persist();
    } else if (m.type === 'export/request') {
      exportView(document.getElementById('app')!, m.format, data).then(
        (out) => transport.post({ type: 'export/result', requestId: m.requestId, format: m.format, data: out }),
        (e: Error) => transport.post({ type: 'export/result', requestId: m.requestId, format: m.format, data: '', error: e.message }),
      );
    }
  } catch (e) {
    transport.post({ type: 'error', message: (e as Error).message });
  }
});

if (data) explorer.setData(data);
else explorer.render();
transport.post({ type: 'ready' });
