/** Colours from the VS Code theme (CSS variables), resolved for canvas drawing. */
import * as d3 from 'd3';

export function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

/** Series colours: the theme's chart palette. */
export function chartColors(): string[] {
  return ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'].map((v, i) =>
    cssVar(v, d3.schemeTableau10[i]),
  );
}

/** A sequential scale from the editor background to the theme's accent, for heat maps. */
export function heatScale(max: number): (v: number) => string {
  const bg = cssVar('--vscode-editor-background', '#1e1e1e');
  const hi = cssVar('--vscode-charts-orange', '#d18616');
  const mid = cssVar('--vscode-charts-blue', '#3794ff');
  const s = d3.scaleLinear<string>().domain([0, max * 0.35, max || 1]).range([bg, mid, hi]).interpolate(d3.interpolateLab).clamp(true);
  return (v: number) => (Number.isFinite(v) ? s(v) : bg);
}

export function rgbOf(color: string): [number, number, number] {
  const c = d3.rgb(color);
  return [c.r, c.g, c.b];
}
