/** Small shared helpers for the D3 views: sections, canvases, tooltips, token labels. */
import * as d3 from 'd3';

export function section(root: d3.Selection<HTMLElement, unknown, null, undefined>, id: string, title: string) {
  const s = root
    .selectAll<HTMLElement, string>(`section#${id}`)
    .data([id], (d) => d as string)
    .join((enter) => {
      const e = enter.append('section').attr('id', (d) => d);
      e.append('h3');
      e.append('div').attr('class', 'body');
      return e;
    });
  s.select('h3').text(title);
  return s.select<HTMLDivElement>('div.body');
}

let tip: HTMLDivElement | null = null;
export function tooltip(html: string | null, ev?: MouseEvent): void {
  if (!tip) {
    tip = document.createElement('div');
    tip.className = 'hl-tooltip';
    document.body.appendChild(tip);
  }
  if (!html || !ev) {
    tip.style.display = 'none';
    return;
  }
  tip.textContent = '';
  tip.innerText = html;
  tip.style.display = 'block';
  tip.style.left = `${ev.clientX + 12}px`;
  tip.style.top = `${ev.clientY + 12}px`;
}

/** Visible form of a token: whitespace made explicit. */
export function showToken(s: string): string {
  return s.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/ /g, '·') || '∅';
}

export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(digits) : v.toExponential(1);
}
