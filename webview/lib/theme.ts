/**
 * Colours from the VS Code theme (CSS variables `--vscode-…`), resolved for canvas drawing: the
 * chart palette, one colour per head, and value scales — sequential (background → blue → orange)
 * or diverging around 0 (blue ← background → red) — as 256-entry lookup tables of packed pixels
 * so a tile of 65,536 cells is coloured without building a string per cell.
 */
import * as d3 from 'd3';

/**
 * Resolved theme variables, cached: reading a computed style forces the browser to recompute
 * styles after every DOM change, which cost tens of milliseconds per view with a large page.
 */
let resolved = new Map<string, string>();

/** The theme changed: read the variables again. */
export function themeChanged(): void {
  resolved = new Map();
}

export function cssVar(name: string, fallback: string): string {
  let v = resolved.get(name);
  if (v === undefined) resolved.set(name, (v = getComputedStyle(document.body).getPropertyValue(name).trim()));
  return v || fallback;
}

const CHART_VARS = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];

/** Series colours: the theme's chart palette. */
export function chartColors(): string[] {
  return CHART_VARS.map((v, i) => cssVar(v, d3.schemeTableau10[i]));
}

/** Is the editor background dark? (picks the lightness of generated colours) */
export function darkTheme(): boolean {
  return d3.hsl(cssVar('--vscode-editor-background', '#1e1e1e')).l < 0.5;
}

/**
 * One colour per head: the theme's six chart colours while they suffice, else evenly spaced hues
 * at a lightness that reads on the theme's background.
 */
export function headPalette(H: number): string[] {
  if (H <= CHART_VARS.length) return chartColors().slice(0, Math.max(1, H));
  const l = darkTheme() ? 0.66 : 0.42;
  return Array.from({ length: H }, (_, h) => d3.hsl((h * 360) / H + 210, 0.7, l).formatHex());
}

/** A colour as one little-endian RGBA pixel word (what a Uint32Array over ImageData holds). */
export function packColor(color: string, alpha = 255): number {
  const c = d3.rgb(color);
  return ((alpha << 24) | (Math.round(c.b) << 16) | (Math.round(c.g) << 8) | Math.round(c.r)) >>> 0;
}

/** A value → colour map for canvases (packed lookup table) and for SVG/HTML (CSS strings). */
export interface ValueScale {
  domain: [number, number];
  diverging: boolean;
  /** 256 packed colours, low to high. */
  lut: Uint32Array;
  /** Packed colour of a missing value (NaN): the background. */
  missing: number;
  /** Table index of a value (−1 for NaN). */
  index(v: number): number;
  css(v: number): string;
}

/**
 * A scale over `domain`. Sequential scales may take a gamma (0.5 = square root: small attention
 * weights stay visible); diverging ones are symmetric around 0 with |domain| as the bound.
 */
export function valueScale(domain: [number, number], diverging = false, gamma = 1): ValueScale {
  const bg = cssVar('--vscode-editor-background', '#1e1e1e');
  const interp = diverging
    ? d3.piecewise(d3.interpolateLab, [cssVar('--vscode-charts-blue', '#3794ff'), bg, cssVar('--vscode-charts-red', '#f14c4c')])
    : d3.scaleLinear<string>().domain([0, 0.35, 1]).range([bg, cssVar('--vscode-charts-blue', '#3794ff'), cssVar('--vscode-charts-orange', '#d18616')]).interpolate(d3.interpolateLab);
  const colors = Array.from({ length: 256 }, (_, i) => d3.rgb(interp(i / 255)).formatHex());
  const lut = Uint32Array.from(colors, (c) => packColor(c));
  const bound = Math.max(Math.abs(domain[0]), Math.abs(domain[1])) || 1;
  const [lo, hi] = diverging ? [-bound, bound] : [domain[0], domain[1] > domain[0] ? domain[1] : domain[0] + 1];
  const index = (v: number): number => {
    if (!Number.isFinite(v)) return -1;
    let u = (v - lo) / (hi - lo);
    u = u <= 0 ? 0 : u >= 1 ? 1 : u;
    if (!diverging && gamma !== 1) u = Math.pow(u, gamma);
    return Math.round(u * 255);
  };
  return {
    domain: [lo, hi],
    diverging,
    lut,
    missing: packColor(bg),
    index,
    css: (v) => {
      const i = index(v);
      return i < 0 ? bg : colors[i];
    },
  };
}

/** A scale for a signal: its catalogue range if it has one, else the finite values' extent. */
export function scaleForValues(values: ArrayLike<number>, range?: [number, number], diverging = false): ValueScale {
  if (range) return valueScale(range, diverging);
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!Number.isFinite(lo)) return valueScale([0, 1], diverging);
  return valueScale(diverging ? [lo, hi] : [Math.min(0, lo), hi], diverging);
}
