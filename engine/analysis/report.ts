/**
 * The standalone HTML report of `headlens analyze --html`: one file, the analysis record embedded
 * as JSON, the D3 report bundle (media/dist/report.js) and CSS inline — no CDN, no network.
 */
import type { AnalyzeEvent, ExplorerData } from '../protocol';

/** Base64 characters of attention maps a report carries by default (the rest of it is small). */
export const REPORT_ATTENTION_BUDGET = 16 * 1024 * 1024;

export interface ReportAttention {
  /** The layers whose attention maps the report keeps. */
  layers: number[];
  /** Layers whose maps were left out to keep the file small. */
  dropped: number[];
}

/**
 * The report's copy of an analysis with the attention maps of the chosen layers only (`layers`,
 * else as many layers from the first as fit `budget` characters; at least one). Summaries,
 * latent codes and signals of every layer stay: only the (H, T, T) maps cost megabytes.
 */
export function slimForReport(data: ExplorerData, opts: { layers?: number[]; budget?: number } = {}): { data: ExplorerData; attention: ReportAttention } {
  const size = new Map<number, number>();
  for (const e of data.events) if (e.kind === 'layer' && e.attn) size.set(e.layer, (size.get(e.layer) ?? 0) + e.attn.data.length);
  const present = [...size.keys()].sort((a, b) => a - b);
  let keep: number[];
  if (opts.layers) keep = present.filter((l) => opts.layers!.includes(l));
  else {
    keep = [];
    let total = 0;
    for (const l of present) {
      if (keep.length && total + size.get(l)! > (opts.budget ?? REPORT_ATTENTION_BUDGET)) break;
      keep.push(l);
      total += size.get(l)!;
    }
  }
  const dropped = present.filter((l) => !keep.includes(l));
  if (!dropped.length) return { data, attention: { layers: keep, dropped } };
  const events: AnalyzeEvent[] = data.events.map((e) => (e.kind === 'layer' && e.attn && dropped.includes(e.layer) ? { ...e, attn: undefined } : e));
  return { data: { ...data, events }, attention: { layers: keep, dropped } };
}

/** JSON that is safe inside a <script> element (no `</script>`, no `<!--`, no U+2028/2029). */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function renderReportHtml(data: ExplorerData, scriptSource: string, css: string): string {
  const title = `Head Lens — ${data.documentUri.split(/[\\/]/).pop() ?? 'analysis'}`;
  const safeScript = scriptSource.replace(/<\/script/gi, '<\\/script');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${css.replace(/<\/style/gi, '<\\/style')}</style>
</head>
<body class="headlens-report">
<div id="app"></div>
<script type="application/json" id="headlens-data">${scriptSafeJson(data)}</script>
<script>${safeScript}</script>
</body>
</html>
`;
}
