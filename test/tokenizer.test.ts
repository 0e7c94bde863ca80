/** GPT-2 BPE ids against known values, and the offset invariants on hard strings. */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import { tokenize, encodeIds, decodeIds, tokenText, EOT_ID } from '../engine/tokenizer';
import { BadInputError } from '../engine/errors';

/** Offsets tile the text exactly, are monotonic, and ids round-trip. */
function assertInvariants(text: string, lossless = true): void {
  const toks = tokenize(text);
  let at = 0;
  toks.forEach((t, i) => {
    assert.equal(t.index, i);
    assert.equal(t.start, at, `token ${i} starts at ${t.start}, previous ended at ${at}`);
    assert.ok(t.end >= t.start, `token ${i} has end < start`);
    at = t.end;
  });
  assert.equal(at, text.length, 'tokens do not reach the end of the text');
  assert.equal(toks.map((t) => text.slice(t.start, t.end)).join(''), text);
  if (lossless) assert.equal(decodeIds(toks.map((t) => t.id)), text);
}

describe('tokenizer', () => {
  test('known GPT-2 ids', () => {
    assert.deepEqual(encodeIds('Hello world'), [15496, 995]);
    assert.deepEqual(encodeIds(' the'), [262]);
    assert.deepEqual(encodeIds('\n'), [198]);
  });

  test('offsets of plain words', () => {
    const t = tokenize('Hello world');
    assert.deepEqual(t.map((x) => [x.text, x.start, x.end]), [['Hello', 0, 5], [' world', 5, 11]]);
  });

  test('baseOffset shifts every offset', () => {
    const t = tokenize('Hello world', 100);
    assert.deepEqual([t[0].start, t[1].end], [100, 111]);
  });

  test('CRLF and tabs', () => assertInvariants('line one\r\n\tindented\r\n\t\tmore\r\n'));
  test('emoji, ZWJ sequences and flags (split across tokens)', () => {
    const s = 'hi 👩‍💻 there 🇫🇷 ok 🦊';
    assertInvariants(s);
    // the fox (2 code units, 4 bytes) is split over several tokens: the first takes both units
    const toks = tokenize(s);
    const fox = s.indexOf('🦊');
    const owner = toks.find((t) => t.start <= fox && fox < t.end)!;
    assert.ok(owner.end >= fox + 2, 'the token holding the first byte takes both code units');
    assert.ok(toks.some((t) => t.start === t.end), 'continuation-only tokens get empty ranges');
  });
  test('CJK', () => assertInvariants('日本語のテキストと中文字符'));
  test('combining marks', () => assertInvariants('e\u0301te\u0301 cafe\u0301 n\u0303'));
  test('an empty string gives no tokens', () => assert.deepEqual(tokenize(''), []));
  test('whitespace only', () => assertInvariants('   \n\n\t  '));
  test('<|endoftext|> in user text is ordinary text', () => {
    const ids = encodeIds('<|endoftext|>');
    assert.ok(!ids.includes(EOT_ID));
    assertInvariants('a <|endoftext|> b');
  });
  test('a lone surrogate does not throw and offsets still tile', () => assertInvariants('x\ud800y\udc00z', false));
  test('a long mixed text', () => assertInvariants('def f(x):\n    return x * 2  # ✓ 日本\n'.repeat(500)));
  test('tokenText of an id outside the vocabulary is bad input', () => {
    assert.throws(() => tokenText(50257), BadInputError);
    assert.equal(tokenText(15496), 'Hello');
  });
});
