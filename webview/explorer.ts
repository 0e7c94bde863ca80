/**
 * Attention Explorer panel (webview entry). The view state survives hide/show and reloads through
 * the transport's setState (saved a moment after it changes); the analysis is saved with it while
 * it is small — the host sends it again on `ready` anyway. The theme's colours are re-read when
 * VS Code switches theme (it changes the body's class and the root's style variables).
 */
import * as d3 from 'd3';
import type { ExplorerData } from '../engine/protocol';
import { Explorer } from './lib/explorerViews';
import { restoreState, type ExplorerState } from './lib/state';
import { getTransport, onHostMessage } from './lib/transport';
import { exportView } from './lib/exporter';

/** An analysis bigger than this (base64 characters) is not kept in the saved state. */
const SAVED_DATA_LIMIT = 16_000_000;
const SAVE_DELAY_MS = 200;

interface Saved {
  view: ExplorerState;
  data: ExplorerData | null;
}

const transport = getTransport();
const saved = transport.getState<Partial<Saved>>();
const state = restoreState(saved?.view);
let data: ExplorerData | null = saved?.data ?? null;
const root = d3.select<HTMLElement, unknown>('#app');
const views = root.append('div').attr('class', 'views') as unknown as d3.Selection<HTMLElement, unknown, null, undefined>;

let saveTimer: ReturnType<typeof setTimeout> | undefined;
function persist(): void {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => transport.setState<Saved>({ view: state, data: data && wireSize(data) <= SAVED_DATA_LIMIT ? data : null }), SAVE_DELAY_MS);
}

/** Roughly how big an analysis is on the wire: its arrays' base64 text. */
function wireSize(d: ExplorerData): number {
  let n = 0;
  for (const e of d.events) {
    if (e.kind !== 'layer') continue;
    n += (e.attn?.data.length ?? 0) + e.headMax.data.length * 4 + e.latentCode.data.length;
    for (const s of Object.values(e.signals ?? {})) n += s.data.length;
  }
  return n;
}

function report(e: unknown): void {
  transport.post({ type: 'error', message: (e as Error)?.message ?? String(e) });
}

const explorer = new Explorer(views, state, {
  onFocus: (layer, head) => transport.post({ type: 'explorer/focus', layer, head }),
  onSelect: (tokenIndex, role) => transport.post({ type: 'explorer/selectToken', tokenIndex, role }),
  onPersist: persist,
});

onHostMessage((m) => {
  try {
    if (m.type === 'explorer/data') {
      data = m.data;
      explorer.setData(m.data);
      persist();
    } else if (m.type === 'explorer/focus') {
      explorer.focus(m.layer, m.head);
      persist();
    } else if (m.type === 'explorer/selection') {
      explorer.select(m.tokenIndex, m.role, true);
      persist();
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
    report(e);
  }
});

// VS Code switches theme by changing the body's class and the root's CSS variables
const themeWatch = new MutationObserver(() => {
  try {
    explorer.themeChanged();
  } catch (e) {
    report(e);
  }
});
themeWatch.observe(document.body, { attributes: true, attributeFilter: ['class'] });
themeWatch.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });

try {
  if (data) explorer.setData(data);
  else explorer.render();
} catch (e) {
  report(e);
}
transport.post({ type: 'ready' });
