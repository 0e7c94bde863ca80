/**
 * The explorer's view state: what is focused, selected and chosen in each view. It is what the
 * panel saves with the transport's setState and gets back after a reload, so every field is plain
 * JSON and `restoreState` accepts anything (an older version's state, or none) and fills the rest.
 */

export type LatentColour = 'head' | 'class' | 'signal';
export type ProbeKind = 'ridge' | 'logistic';
export type ProbeLabel = 'class' | 'regex';

export interface MatrixView {
  cellW: number;
  left: number;
  top: number;
}

export interface ExplorerState {
  layer: number;
  head: number;
  /** Selected query and key (document token indices). */
  query: number | null;
  key: number | null;
  /** Window the matrix shows; null = the one owning the selected query (else the first). */
  window: number | null;
  /** Overview cell colour: 'attention' (thumbnails) or the name of any per-token or per-head signal. */
  overviewMetric: string;
  /** The heads × tokens strip's signal (a head×token or kvhead×token name; '' = the first). */
  stripSignal: string;
  /** Saved zoom and scroll of the matrix, per window size (a restored view must fit the grid). */
  matrixView: MatrixView | null;
  /** Head view: the query range [from, to] (document indices; null = around the selection). */
  headRange: [number, number] | null;
  hiddenHeads: number[];
  /** Latent-code map: layer (null = the focused layer), colouring, and the signal it colours by. */
  latentLayer: number | null;
  latentColour: LatentColour;
  latentSignal: string;
  probeKind: ProbeKind;
  probeLabel: ProbeLabel;
  probeRegex: string;
  /** Report: the signal colouring the annotated text. */
  textSignal: string;
}

export function defaultState(): ExplorerState {
  return {
    layer: 0,
    head: 0,
    query: null,
    key: null,
    window: null,
    overviewMetric: 'attention',
    stripSignal: '',
    matrixView: null,
    headRange: null,
    hiddenHeads: [],
    latentLayer: null,
    latentColour: 'head',
    latentSignal: '',
    probeKind: 'ridge',
    probeLabel: 'class',
    probeRegex: '^\\s*[A-Z]',
    textSignal: '',
  };
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const intOrNull = (v: unknown): number | null => (isInt(v) && v >= 0 ? v : null);
const str = (v: unknown, d: string): string => (typeof v === 'string' ? v : d);
function oneOf<T extends string>(v: unknown, allowed: readonly T[], d: T): T {
  return allowed.includes(v as T) ? (v as T) : d;
}

/** A state from whatever was saved (fields of the wrong type fall back to the defaults). */
export function restoreState(saved: unknown): ExplorerState {
  const d = defaultState();
  if (!saved || typeof saved !== 'object') return d;
  const s = saved as Record<string, unknown>;
  const mv = s.matrixView as Record<string, unknown> | null | undefined;
  const range = s.headRange;
  return {
    layer: isInt(s.layer) && s.layer >= 0 ? s.layer : d.layer,
    head: isInt(s.head) && s.head >= 0 ? s.head : d.head,
    query: intOrNull(s.query),
    key: intOrNull(s.key),
    window: intOrNull(s.window),
    overviewMetric: str(s.overviewMetric, d.overviewMetric),
    // the earlier explorer called the strip's signal loraMetric
    stripSignal: str(s.stripSignal ?? s.loraMetric, d.stripSignal),
    matrixView: mv && typeof mv.cellW === 'number' && typeof mv.left === 'number' && typeof mv.top === 'number' ? { cellW: mv.cellW, left: mv.left, top: mv.top } : null,
    headRange: Array.isArray(range) && range.length === 2 && range.every(isInt) ? [range[0], range[1]] : null,
    hiddenHeads: Array.isArray(s.hiddenHeads) ? s.hiddenHeads.filter(isInt) : [],
    latentLayer: intOrNull(s.latentLayer),
    latentColour: oneOf(s.latentColour, ['head', 'class', 'signal'] as const, d.latentColour),
    latentSignal: str(s.latentSignal, d.latentSignal),
    probeKind: oneOf(s.probeKind, ['ridge', 'logistic'] as const, d.probeKind),
    probeLabel: oneOf(s.probeLabel, ['class', 'regex'] as const, d.probeLabel),
    probeRegex: str(s.probeRegex, d.probeRegex),
    textSignal: str(s.textSignal, d.textSignal),
  };
}
