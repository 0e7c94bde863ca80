/**
 * Export of a view: SVG (the SVG views serialised, canvases embedded as PNG images, all in one
 * document), PNG (everything drawn onto one canvas) or the analysis JSON.
 */
import type { ExplorerData } from '../../engine/protocol';
import { cssVar } from './theme';

export async function exportView(root: HTMLElement, format: 'svg' | 'png' | 'json', data: ExplorerData | null): Promise<string> {
  if (format === 'json') return JSON.stringify(data);
  const items = [...root.querySelectorAll<HTMLElement>('svg, canvas')].filter((el) => !el.closest('svg') || el.tagName.toLowerCase() === 'svg');
  const top = root.getBoundingClientRect().top;
  const width = Math.max(320, ...items.map((el) => el.getBoundingClientRect().right - root.getBoundingClientRect().left));
  const height = Math.max(100, ...items.map((el) => el.getBoundingClientRect().bottom - top));
  const fg = cssVar('--vscode-editor-foreground', '#cccccc'), bg = cssVar('--vscode-editor-background', '#1e1e1e');
  const parts: string[] = [];
  for (const el of items) {
    const r = el.getBoundingClientRect();
    const x = r.left - root.getBoundingClientRect().left, y = r.top - top;
    if (el instanceof HTMLCanvasElement) parts.push(`<image x="${x}" y="${y}" width="${r.width}" height="${r.height}" href="${el.toDataURL('image/png')}"/>`);
    else {
      const clone = el.cloneNode(true) as SVGSVGElement;
      clone.setAttribute('x', String(x));
      clone.setAttribute('y', String(y));
      parts.push(new XMLSerializer().serializeToString(clone));
    }
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" style="color:${fg};background:${bg};font:11px sans-serif"><rect width="100%" height="100%" fill="${bg}"/>${parts.join('')}</svg>`;
  if (format === 'svg') return svg;
  const img = new Image();
  await new Promise<void>((res, rej) => {
    img.onload = () => res();
    img.onerror = () => rej(new Error('could not render the SVG for PNG export'));
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  });
  const c = document.createElement('canvas');
  c.width = width;
  c.height = height;
  c.getContext('2d')!.drawImage(img, 0, 0);
  return c.toDataURL('image/png');
}
