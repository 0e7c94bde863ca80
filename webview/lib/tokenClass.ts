/**
 * Token classes for the latent-code map and the probe: identifier, keyword, number, punctuation,
 * whitespace, string/comment (the classes `headlens compare` reports, so a probe and a comparison
 * speak of the same thing). The webview has the tokens' texts, not the document, so the text is
 * the tokens joined; one left-to-right scan marks what lies inside string literals and comments
 * of the languages people train on (quotes, triple quotes, template strings, `#`, `//`, `--`,
 * block comments), then each token is classified by its own characters.
 */
export const TOKEN_CLASSES = ['identifier', 'keyword', 'number', 'punctuation', 'whitespace', 'string/comment'] as const;
export type TokenClass = (typeof TOKEN_CLASSES)[number];

/** The same keyword list as the engine's comparison (engine/eval/classes.ts), so the classes agree. */
const KEYWORDS = new Set(
  [
    // Python
    'and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield none true false self',
    // JavaScript / TypeScript
    'case catch const default delete do enum export extends function instanceof interface let new null of private protected public static super switch this throw type typeof undefined var void',
    // C-like, Rust
    'int float double char bool boolean string struct fn impl pub mut use mod match loop where trait',
  ]
    .join(' ')
    .split(' '),
);

/** Where each UTF-16 unit of `text` lies inside a string literal or a comment (1) or not (0). */
export function literalMask(text: string): Uint8Array {
  const inside = new Uint8Array(text.length);
  let i = 0;
  while (i < text.length) {
    const end = literalEnd(text, i);
    if (end > i) {
      inside.fill(1, i, end);
      i = end;
    } else i++;
  }
  return inside;
}

/** If a string or comment opens at i, where it ends (exclusive); else i. */
function literalEnd(text: string, i: number): number {
  const c = text[i];
  const upTo = (closer: string, from: number, keep: number) => {
    const j = text.indexOf(closer, from);
    return j < 0 ? text.length : j + keep;
  };
  if (text.startsWith('"""', i) || text.startsWith("'''", i)) return upTo(text.slice(i, i + 3), i + 3, 3);
  if (text.startsWith('/*', i)) return upTo('*/', i + 2, 2);
  if (c === '#' || text.startsWith('//', i) || text.startsWith('--', i)) return upTo('\n', i, 0);
  if (c === '"' || c === "'" || c === '`') return quotedEnd(text, i, c);
  return i;
}

/** End of a quoted string opened at i: escapes skip a character; only template strings span lines. */
function quotedEnd(text: string, i: number, quote: string): number {
  let j = i + 1;
  while (j < text.length) {
    const c = text[j];
    if (c === '\\') j += 2;
    else if (c === quote) return j + 1;
    else if (c === '\n' && quote !== '`') return j;
    else j++;
  }
  return text.length;
}

const NUMBER = /^[+-]?(?:0x[0-9a-f_]+|\d[\d_]*(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?)$/i;
const WORD = /^[\p{L}_$][\p{L}\p{N}_$]*$/u;
const ALNUM = /^[\p{L}\p{N}_$]+$/u;

/** The class of one token's text; `literal` = the share of its characters inside a string or comment. */
export function tokenClass(text: string, literal: number): TokenClass {
  const body = text.trim();
  if (!body) return 'whitespace';
  if (literal > 0.5) return 'string/comment';
  if (NUMBER.test(body)) return 'number';
  if (WORD.test(body)) return KEYWORDS.has(body.toLowerCase()) ? 'keyword' : 'identifier';
  if (ALNUM.test(body)) return 'identifier';
  return 'punctuation';
}

/** The class of every token, the text being the tokens joined in order. */
export function classifyTokenTexts(texts: readonly string[]): TokenClass[] {
  const text = texts.join('');
  const mask = literalMask(text);
  const out: TokenClass[] = [];
  let at = 0;
  for (const t of texts) {
    let inside = 0;
    for (let i = at; i < at + t.length; i++) inside += mask[i];
    out.push(tokenClass(t, t.length ? inside / t.length : 0));
    at += t.length;
  }
  return out;
}
