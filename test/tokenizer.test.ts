/** GPT-2 BPE ids against known values and the reference package, and the offset invariants on hard strings. */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { tokenize, encodeIds, decodeIds, tokenText, EOT_ID, GPT2_VOCAB_SIZE } from '../engine/tokenizers/gpt2';
import { BadInputError } from '../engine/errors';
// The package's own encoder: the reference the ids must equal (it is slow only on very long pieces).
import reference = require('gpt-tokenizer/cjs/encoding/r50k_base');

const referenceIds = (text: string): number[] => reference.encode(text, { disallowedSpecial: new Set() });

/**
 * Offsets are sorted, non-overlapping and tile the text exactly; index is the position; the text
 * field is the token's display text; and (for well-formed UTF-16) the ids decode back to the text.
 */
function assertInvariants(text: string, { lossless = true, baseOffset = 0 } = {}): void {
  const tokens = tokenize(text, baseOffset);
  let at = baseOffset;
  tokens.forEach((t, i) => {
    assert.equal(t.index, i);
    assert.equal(t.start, at, `token ${i} starts at ${t.start}, the previous one ended at ${at}`);
    assert.ok(t.start <= t.end, `token ${i} has end ${t.end} < start ${t.start}`);
    assert.equal(t.text, tokenText(t.id));
    at = t.end;
  });
  assert.equal(at, baseOffset + text.length, 'tokens do not reach the end of the text');
  assert.equal(tokens.map((t) => text.slice(t.start - baseOffset, t.end - baseOffset)).join(''), text);
  if (lossless) assert.equal(decodeIds(tokens.map((t) => t.id)), text);
}

/** [display text, start, end] per token. */
const spans = (text: string): [string, number, number][] => tokenize(text).map((t) => [t.text, t.start, t.end]);

/** Deterministic strings over characters that stress the pre-tokenizer and the UTF-8 mapping. */
function randomTexts(count: number, maxLength: number): string[] {
  const alphabet = ['a', 'Z', 'é', 'e\u0301', '日', '語', '🦊', '👩\u200d💻', '🇫🇷', ' ', '  ', '\t', '\r\n', '\n', "'s", "'ll", '7', '42', '.', '=', '-', '<|', '|>', 'ß', 'Ω', '\u00a0'];
  let seed = 12345;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: count }, () => Array.from({ length: 1 + Math.floor(next() * maxLength) }, () => alphabet[Math.floor(next() * alphabet.length)]).join(''));
}

const MIXED = [
  "I'll say it's 3.14159, they're sure we've 12 o'clock DON'T.\n",
  'def f(x):\r\n\treturn x * 2  # ✓ 日本語 — naïve café\n',
  '    if (a !== b) { console.log(`${a}`); }   \n\n\n',
  'Здравствуй, мир! Γειά σου κόσμε 안녕하세요 مرحبا\n',
  '🦊🦊 👩‍💻 🇫🇷🇩🇪 1️⃣ ========== ---- ....  \u00a0\u2003x\n',
].join('');

describe('tokenizer: ids', () => {
  test('simple strings give their known GPT-2 ids', () => {
    assert.deepEqual(encodeIds('Hello world'), [15496, 995]);
    assert.deepEqual(encodeIds('hello world'), [31373, 995]);
    assert.deepEqual(encodeIds(' the'), [262]);
    assert.deepEqual(encodeIds(' '), [220]);
    assert.deepEqual(encodeIds('\n'), [198]);
    assert.deepEqual(encodeIds('\n\n'), [628]);
  });

  test('"<|endoftext|>" in user text is encoded as its characters, not as the special token', () => {
    assert.deepEqual(encodeIds('<|endoftext|>'), [27, 91, 437, 1659, 5239, 91, 29]);
  });

  test('ids equal the gpt-tokenizer package on mixed text', () => {
    assert.deepEqual(encodeIds(MIXED), referenceIds(MIXED));
  });

  test('ids equal the gpt-tokenizer package on 300 random strings of hard characters', () => {
    for (const text of randomTexts(300, 60)) assert.deepEqual(encodeIds(text), referenceIds(text), JSON.stringify(text));
  });

  test('ids equal the gpt-tokenizer package on long single pieces (many merges)', () => {
    const pieces = ['a'.repeat(3000), '7'.repeat(2000), '=-'.repeat(1000), '語'.repeat(700), ' ' + 'abcdefghij'.repeat(200), '🦊'.repeat(300)];
    for (const text of pieces) assert.deepEqual(encodeIds(text), referenceIds(text), text.slice(0, 20));
  });

  test('a 1 MB single piece encodes in linear-ish time without overflowing the stack', { timeout: 30_000 }, () => {
    const text = 'a'.repeat(1 << 20);
    const ids = encodeIds(text);
    assert.equal(decodeIds(ids), text);
  });
});

describe('tokenizer: decoding', () => {
  test('tokenText gives the text of a whole-character token', () => {
    assert.equal(tokenText(15496), 'Hello');
    assert.equal(tokenText(EOT_ID), '<|endoftext|>');
  });

  test('tokenText shows a partial UTF-8 character as U+FFFD and never throws inside the vocabulary', () => {
    // 8582 is the first two bytes of a 4-byte emoji (🦊 = 8582, 99, 232)
    assert.ok(tokenText(8582).includes('\uFFFD'));
    for (let id = 0; id < GPT2_VOCAB_SIZE; id++) assert.equal(typeof tokenText(id), 'string');
  });

  test('an id outside the vocabulary is bad input', () => {
    for (const id of [GPT2_VOCAB_SIZE, -1, 1.5, NaN]) {
      assert.throws(() => tokenText(id), BadInputError);
      assert.throws(() => decodeIds([15496, id]), BadInputError);
    }
  });

  test('a character cut off by one decode does not leak into the next', () => {
    assert.equal(decodeIds([8582]), '\uFFFD');
    assert.equal(decodeIds([8582, 99, 232]), '🦊');
  });
});

describe('tokenizer: offsets', () => {
  test('plain words get their UTF-16 spans', () => {
    assert.deepEqual(spans('Hello world'), [['Hello', 0, 5], [' world', 5, 11]]);
  });

  test('baseOffset shifts every offset', () => {
    const t = tokenize('Hello world', 100);
    assert.deepEqual(t.map((x) => [x.start, x.end]), [[100, 105], [105, 111]]);
    assertInvariants(MIXED, { baseOffset: 100 });
  });

  test('an empty string gives no tokens', () => assert.deepEqual(tokenize(''), []));

  test('CRLF line ends tile', () => assertInvariants('line one\r\nline two\r\n\r\nend\r\n'));

  test('tabs tile', () => assertInvariants('\tindented\n\t\tmore\t\tx\t'));

  test('whitespace only tiles', () => assertInvariants('   \n\n\t  \r\n '));

  test('a split emoji belongs to the token holding its first byte; the rest get empty ranges at its end', () => {
    // 🦊 is 4 bytes, 2 code units, and three tokens
    assert.deepEqual(tokenize('🦊').map((t) => [t.id, t.start, t.end]), [[8582, 0, 2], [99, 2, 2], [232, 2, 2]]);
    assertInvariants('hi 🦊 there 🦊🦊');
  });

  test('ZWJ sequences tile', () => assertInvariants('dev 👩‍💻 and 👨‍👩‍👧‍👦 family'));

  test('flags tile', () => assertInvariants('🇫🇷 vs 🇩🇪🇯🇵'));

  test('CJK tiles', () => assertInvariants('日本語のテキストと中文字符'));

  test('combining marks tile', () => assertInvariants('e\u0301te\u0301 cafe\u0301 n\u0303'));

  test('"<|endoftext|>" as plain text tiles', () => {
    assertInvariants('a <|endoftext|> b');
    assert.ok(!tokenize('a <|endoftext|> b').some((t) => t.id === EOT_ID));
  });

  test('lone surrogates encode as U+FFFD and keep their code unit', () => {
    for (const text of ['x\ud800y', 'x\udc00y', 'end\ud83d', '\udc00\ud800']) {
      assert.deepEqual(encodeIds(text), encodeIds(text.replace(/[\ud800-\udfff]/g, '\uFFFD')));
      assertInvariants(text, { lossless: false });
    }
  });

  test('random strings of hard characters tile', () => {
    for (const text of randomTexts(300, 60)) assertInvariants(text);
  });

  test('a long mixed text tiles', () => assertInvariants(MIXED.repeat(400)));
});
