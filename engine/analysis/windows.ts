/**
 * Context for every token of a long document: the sliding-window rule of Hugging Face's
 * "perplexity of fixed-length models", used alike by the analysis, the evaluation and compare.
 * Windows start at 0, stride, 2·stride, … (each at most `context` long, the last one ending at the
 * document's end); a window scores only the tokens past the previous window's end; every token after
 * the first is scored exactly once, with the context ids[window start : token].
 *
 * Scoring token i means reading the prediction at position i − 1, so each window "owns" the
 * positions that predict its scored tokens. With stride = context the windows do not overlap and a
 * window's first token has no context inside it: it is scored by the window before, from that
 * window's last position (context = the whole previous window) — the disjoint windows of earlier
 * versions. Every position belongs to exactly one window, which is where the views read it.
 */

export interface Window {
  /** Tokens [begin, end) of the document run together. */
  begin: number;
  end: number;
  /** Positions [ownFrom, ownTo) (document indices) whose predictions this window scores and reports. */
  ownFrom: number;
  ownTo: number;
}

export function slidingWindows(n: number, context: number, stride: number): Window[] {
  if (!(Number.isInteger(context) && context >= 1)) throw new Error(`context must be a positive integer, got ${context}`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= context)) throw new Error(`stride must be an integer in [1, ${context}], got ${stride}`);
  const out: Window[] = [];
  let prevEnd = 0;
  for (let begin = 0; begin < n; begin += stride) {
    const end = Math.min(begin + context, n);
    // scored tokens: [max(prevEnd, begin + 1), end) → positions one before
    const first = Math.max(prevEnd, begin + 1);
    out.push({ begin, end, ownFrom: first - 1, ownTo: end - 1 });
    prevEnd = end;
    if (end === n) break;
  }
  // a window's first token without context in it (stride = context) goes to the window before
  for (let k = 1; k < out.length; k++) {
    const w = out[k], prev = out[k - 1];
    if (w.ownFrom > prev.ownTo) prev.ownTo = w.ownFrom;
  }
  // the last token predicts nothing; its position still belongs somewhere (the last window)
  if (out.length) out[out.length - 1].ownTo = n;
  return out;
}

/** Tokens of context a position had: itself and those before it in its window. */
export function contextOf(w: Window, position: number): number {
  return position - w.begin + 1;
}
