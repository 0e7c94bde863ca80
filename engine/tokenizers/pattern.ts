/**
 * Pre-tokenizer split patterns written for Rust's `regex`/`fancy-regex` (tiktoken's `pat_str`,
 * Hugging Face `Split` regexes) translated to an equivalent JavaScript `u` regex.
 *
 * What differs and how it is translated:
 * - Possessive quantifiers `X?+`, `X*+`, `X++`, `X{n,m}+` and atomic groups `(?>X)`: JavaScript has
 *   neither, but a lookahead is atomic, so `(?=(?<p0>X?))\k<p0>` matches exactly what `X?+` does
 *   (the lookahead takes X? greedily and is never re-entered; the backreference consumes it).
 * - Scoped case-insensitivity `(?i:...)` / `(?i)`: Node 20 has no modifiers, so each ASCII letter
 *   becomes its simple case-folding class (`s` → `[sSſ]`, `k` → `[kKK]`, as Rust's Unicode
 *   `(?i)` matches). Anything else under `(?i)` (a non-ASCII letter, `\p{..}`) is refused.
 * - `\s` is Unicode White_Space in Rust (U+0085 included, U+FEFF not); JavaScript's `\s` differs,
 *   so it becomes `\p{White_Space}`. `\d` → `\p{Nd}`, `\w` → Unicode word characters, `.` → `[^\n]`.
 * - Literal `{`, `}`, `]` and identity escapes of non-syntax characters are escaped the strict
 *   way `u` regexes require.
 * Constructs with no faithful translation here (backreferences, `\b`, nested or set-operation
 * classes, flags other than `i`) are refused with the pattern named, never approximated.
 */
import { BadInputError } from '../errors';

const WHITE_SPACE = '\\p{White_Space}';
const NOT_WHITE_SPACE = '\\P{White_Space}';
const WORD_ITEMS = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';
/** Characters that must stay escaped in a `u` regex outside a class. */
const SYNTAX = new Set('^$\\.*+?()[]{}|/'.split(''));
/** Extra simple case-folding partners of ASCII letters (Unicode CaseFolding.txt, status C/S). */
const FOLD_EXTRAS: Record<string, string> = { s: '\u017f', k: '\u212a' };

/** The JavaScript source equivalent to a Rust-syntax pattern; `where` names the file in errors. */
export function translatePattern(pattern: string, where: string): string {
  return new Translator(pattern, where).run();
}

/** The translated pattern compiled with the global and unicode flags. */
export function compilePattern(pattern: string, where: string): RegExp {
  const source = translatePattern(pattern, where);
  try {
    return new RegExp(source, 'gu');
  } catch (e) {
    throw new BadInputError(`${where}: the split pattern ${JSON.stringify(pattern)} does not compile here (${(e as Error).message}); it cannot be used`);
  }
}

interface Group {
  /** Output index where the group starts (its `(`). */
  start: number;
  /** Case-insensitive mode outside this group, restored at `)`. */
  outerCaseless: boolean;
  /** Atomic group: wrapped at `)`. */
  atomic: boolean;
}

class Translator {
  private at = 0;
  private out = '';
  private caseless = false;
  private readonly groups: Group[] = [];
  /** Output index where the last complete atom starts (-1: none, a quantifier would be misplaced). */
  private atomStart = -1;
  private captureNames = 0;

  constructor(private readonly src: string, private readonly where: string) {}

  run(): string {
    while (this.at < this.src.length) this.step();
    if (this.groups.length) this.refuse('an unclosed group');
    return this.out;
  }

  private refuse(what: string): never {
    throw new BadInputError(`${this.where}: the split pattern ${JSON.stringify(this.src)} uses ${what}, which has no faithful JavaScript translation here; this tokenizer cannot be used`);
  }

  private step(): void {
    const c = this.src[this.at];
    if (c === '(') return this.openGroup();
    if (c === ')') return this.closeGroup();
    if (c === '|') return this.plain('|');
    if (c === '^' || c === '$') return this.plain(c);
    if (c === '*' || c === '+' || c === '?') return this.quantifier(1);
    if (c === '{' && /^\{\d+(,\d*)?\}/.test(this.src.slice(this.at))) return this.quantifier(this.src.indexOf('}', this.at) - this.at + 1);
    this.atomStart = this.out.length;
    if (c === '[') return this.charClass();
    if (c === '\\') return this.escapeOutside();
    const ch = String.fromCodePoint(this.src.codePointAt(this.at)!);
    this.at += ch.length;
    if (ch === '.') this.out += '[^\\n]';
    else this.out += this.literal(ch);
  }

  private plain(s: string): void {
    this.out += s;
    this.at++;
    this.atomStart = -1;
  }

  /** One literal character outside a class. */
  private literal(c: string): string {
    if (this.caseless && /[A-Za-z]/.test(c)) return `[${this.foldsOf(c)}]`;
    if (this.caseless && /\p{L}/u.test(c)) this.refuse(`the non-ASCII letter ${JSON.stringify(c)} under (?i)`);
    return SYNTAX.has(c) ? `\\${c}` : visible(c);
  }

  /** The letters that match `c` under Unicode simple case folding (ASCII letters only). */
  private foldsOf(c: string): string {
    const lower = c.toLowerCase();
    return lower + lower.toUpperCase() + (FOLD_EXTRAS[lower] ?? '');
  }

  private quantifier(length: number): void {
    if (this.atomStart < 0) this.refuse('a quantifier with nothing to repeat');
    let q = this.src.slice(this.at, this.at + length);
    this.at += length;
    const mode = this.src[this.at];
    if (mode === '?') {
      q += '?'; // lazy: the same in JavaScript
      this.at++;
    }
    this.out += q;
    if (mode === '+') {
      this.at++;
      this.makeAtomic(this.atomStart);
    }
    this.atomStart = -1;
  }

  /** Wraps out[start..] in an atomic lookahead + backreference. */
  private makeAtomic(start: number): void {
    const name = `p${this.captureNames++}`;
    this.out = `${this.out.slice(0, start)}(?=(?<${name}>${this.out.slice(start)}))\\k<${name}>`;
  }

  private openGroup(): void {
    const rest = this.src.slice(this.at);
    const group: Group = { start: this.out.length, outerCaseless: this.caseless, atomic: false };
    const flagsOnly = /^\(\?([a-zA-Z-]+)\)/.exec(rest);
    if (flagsOnly) {
      this.setFlags(flagsOnly[1]);
      this.at += flagsOnly[0].length;
      return;
    }
    const opener = /^\((\?:|\?=|\?!|\?<=|\?<!|\?>|\?P?<[A-Za-z_][A-Za-z0-9_]*>|\?[a-zA-Z-]+:)?/.exec(rest)![0];
    if (opener === '(' && rest.startsWith('(?')) this.refuse('an unknown group syntax');
    this.at += opener.length;
    if (opener === '(') this.out += '(';
    else if (opener === '(?>') {
      group.atomic = true;
      this.out += '(?:';
    } else if (opener.startsWith('(?P<')) this.out += `(?<${opener.slice(4)}`;
    else if (/^\(\?[a-zA-Z-]+:$/.test(opener)) {
      this.setFlags(opener.slice(2, -1));
      this.out += '(?:';
    } else this.out += opener;
    this.groups.push(group);
    this.atomStart = -1;
  }

  private setFlags(flags: string): void {
    if (flags === 'i') this.caseless = true;
    else if (flags === '-i') this.caseless = false;
    else this.refuse(`the inline flags (?${flags})`);
  }

  private closeGroup(): void {
    const group = this.groups.pop();
    if (!group) this.refuse('an unmatched )');
    this.at++;
    this.out += ')';
    this.caseless = group!.outerCaseless;
    if (group!.atomic) this.makeAtomic(group!.start);
    this.atomStart = group!.start;
  }

  /** An escape outside a class. */
  private escapeOutside(): void {
    const e = this.readEscape();
    if (e.kind === 'class') this.out += e.text;
    else if (e.kind === 'char') this.out += this.literal(e.text);
    else this.out += e.text;
  }

  /**
   * Reads one escape at `this.at` (a backslash). Returns a char class item list (`class`), a
   * literal character (`char`), or an assertion (`assert`).
   */
  private readEscape(): { kind: 'class' | 'char' | 'assert'; text: string; items?: string } {
    const next = this.src[this.at + 1];
    if (next === undefined) this.refuse('a trailing backslash');
    this.at += 2;
    switch (next) {
      case 's': return { kind: 'class', text: WHITE_SPACE, items: WHITE_SPACE };
      case 'S': return { kind: 'class', text: NOT_WHITE_SPACE, items: NOT_WHITE_SPACE };
      case 'd': return { kind: 'class', text: '\\p{Nd}', items: '\\p{Nd}' };
      case 'D': return { kind: 'class', text: '\\P{Nd}', items: '\\P{Nd}' };
      case 'w': return { kind: 'class', text: `[${WORD_ITEMS}]`, items: WORD_ITEMS };
      case 'W': return { kind: 'class', text: `[^${WORD_ITEMS}]` };
      case 'n': return { kind: 'char', text: '\n' };
      case 'r': return { kind: 'char', text: '\r' };
      case 't': return { kind: 'char', text: '\t' };
      case 'f': return { kind: 'char', text: '\f' };
      case 'v': return { kind: 'char', text: '\v' };
      case 'A': return { kind: 'assert', text: '^' };
      case 'z': return { kind: 'assert', text: '$' };
      case 'p':
      case 'P': return this.property(next);
      case 'x': return { kind: 'char', text: this.hexEscape() };
      default:
        if (/[A-Za-z0-9]/.test(next)) this.refuse(`the escape \\${next}`);
        return { kind: 'char', text: next };
    }
  }

  /** `\pL`, `\p{L}`, `\p{Greek}`, `\P{..}`: the same names in JavaScript's `u` mode. */
  private property(p: string): { kind: 'class'; text: string; items: string } {
    if (this.caseless) this.refuse(`\\${p} under (?i)`);
    let name: string;
    if (this.src[this.at] === '{') {
      const close = this.src.indexOf('}', this.at);
      if (close < 0) this.refuse('an unclosed \\p{');
      name = this.src.slice(this.at + 1, close);
      this.at = close + 1;
    } else {
      name = this.src[this.at++] ?? '';
    }
    const text = `\\${p}{${name}}`;
    return { kind: 'class', text, items: text };
  }

  /** `\xHH` or `\x{H...}` → the character. */
  private hexEscape(): string {
    const braced = /^\{([0-9A-Fa-f]{1,6})\}/.exec(this.src.slice(this.at));
    const plain = /^[0-9A-Fa-f]{2}/.exec(this.src.slice(this.at));
    const hex = braced ? braced[1] : plain ? plain[0] : this.refuse('a malformed \\x escape');
    this.at += braced ? braced[0].length : 2;
    return String.fromCodePoint(parseInt(hex, 16));
  }

  /** `[...]`: items copied with escapes translated; under (?i) ASCII letters get their folds. */
  private charClass(): void {
    this.at++;
    let items = '';
    let negated = false;
    if (this.src[this.at] === '^') {
      negated = true;
      this.at++;
    }
    let first = true;
    for (;;) {
      const c = this.src[this.at];
      if (c === undefined) this.refuse('an unclosed [');
      if (c === ']' && !first) break;
      first = false;
      if (c === '[' || this.src.startsWith('&&', this.at) || this.src.startsWith('--', this.at) || this.src.startsWith('~~', this.at)) this.refuse('a nested class or class set operation');
      if (c === '\\') {
        const e = this.readEscape();
        if (e.kind === 'assert') this.refuse(`an assertion inside a class`);
        if (e.kind === 'class') {
          if (e.items === undefined) this.refuse('\\W inside a class');
          items += e.items;
          continue;
        }
        items += this.classRange(e.text);
        continue;
      }
      const ch = String.fromCodePoint(this.src.codePointAt(this.at)!);
      this.at += ch.length;
      items += this.classRange(ch);
    }
    this.at++; // ]
    this.out += `[${negated ? '^' : ''}${items}]`;
  }

  /** A class item that starts with the literal `lo`, maybe a range `lo-hi`. */
  private classRange(lo: string): string {
    let hi = lo;
    if (this.src[this.at] === '-' && this.src[this.at + 1] !== ']' && this.src[this.at + 1] !== undefined) {
      this.at++;
      if (this.src[this.at] === '\\') {
        const e = this.readEscape();
        if (e.kind !== 'char') this.refuse('a range that ends in a class escape');
        hi = e.text;
      } else {
        hi = String.fromCodePoint(this.src.codePointAt(this.at)!);
        this.at += hi.length;
      }
    }
    const text = lo === hi ? classChar(lo) : `${classChar(lo)}-${classChar(hi)}`;
    return this.caseless ? text + this.rangeFolds(lo, hi) : text;
  }

  /** Under (?i): the case partners of the ASCII letters in [lo, hi]. */
  private rangeFolds(lo: string, hi: string): string {
    const from = lo.codePointAt(0)!;
    const to = hi.codePointAt(0)!;
    let extra = '';
    for (let cp = from; cp <= to; cp++) {
      const ch = String.fromCodePoint(cp);
      if (/[A-Za-z]/.test(ch)) extra += this.foldsOf(ch).replace(ch, '');
      else if (/\p{L}/u.test(ch)) this.refuse(`the non-ASCII letter ${JSON.stringify(ch)} under (?i)`);
    }
    return extra;
  }
}

/** A character inside a `u` class: class syntax characters escaped. */
function classChar(c: string): string {
  return /[\\\]\[^\-/{}()|.*+?$]/.test(c) ? `\\${c}` : visible(c);
}

/** Control characters written as `\u{..}` escapes, so the translated source stays readable. */
function visible(c: string): string {
  const cp = c.codePointAt(0)!;
  return cp < 0x20 || cp === 0x7f ? `\\u{${cp.toString(16)}}` : c;
}
