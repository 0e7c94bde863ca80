/** Small shared helpers for the D3 views: sections, tooltips, token labels, numbers, selects. */
import * as d3 from 'd3';

export type Root = d3.Selection<HTMLElement, unknown, null, undefined>;
/** A section's body (what `section` returns). */
export type Body = d3.Selection<HTMLDivElement, string, HTMLElement, unknown>;

/** The body of the view's section (created once: later calls return the same element). */
export function section(root: Root, id: string, title: string): Body {
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

/** Show a tooltip (text, or a node built by the caller) near the mouse; null hides it. */
export function tooltip(content: string | Node | null, ev?: MouseEvent): void {
  if (!tip) {
    tip = document.createElement('div');
    tip.className = 'hl-tooltip';
    document.body.appendChild(tip);
  }
  if (content === null || !ev) {
    tip.style.display = 'none';
    return;
  }
  if (typeof content === 'string') tip.textContent = content;
  else tip.replaceChildren(content);
  tip.style.display = 'block';
  // keep it inside the window: flip to the other side of the mouse when it would overflow
  const w = tip.offsetWidth, h = tip.offsetHeight;
  const x = ev.clientX + 14 + w > window.innerWidth ? Math.max(0, ev.clientX - 14 - w) : ev.clientX + 14;
  const y = ev.clientY + 14 + h > window.innerHeight ? Math.max(0, ev.clientY - 14 - h) : ev.clientY + 14;
  tip.style.left = `${x}px`;
  tip.style.top = `${y}px`;
}

/** Visible form of a token: whitespace made explicit. */
export function showToken(s: string): string {
  return s.replace(/\r/g, '').replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/ /g, '·') || '∅';
}

export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(digits) : v.toExponential(1);
}

/** A <select> whose options are (value, label) pairs, kept in sync with `value`. */
export function selectInput(parent: d3.Selection<HTMLElement, unknown, null, undefined>, cls: string, options: { value: string; label: string }[], value: string, onChange: (v: string) => void) {
  const sel = parent
    .selectAll<HTMLSelectElement, number>(`select.${cls}`)
    .data([0])
    .join('select')
    .attr('class', cls);
  sel
    .selectAll<HTMLOptionElement, { value: string; label: string }>('option')
    .data(options, (d) => d.value)
    .join('option')
    .attr('value', (d) => d.value)
    .text((d) => d.label);
  sel.property('value', value).on('change', function () {
    onChange((this as HTMLSelectElement).value);
  });
  return sel;
}

/** A token's label in views: `#index text`. */
export function tokenLabel(index: number, text: string): string {
  return `#${index} ${showToken(text)}`;
}
