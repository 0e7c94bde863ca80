/**
 * The standalone HTML report of `headlens analyze --html`: one file, the analysis record embedded
 * as JSON, the D3 report bundle (media/dist/report.js) and CSS inline — no CDN, no network.
 */
import type { ExplorerData } from '../protocol';

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
