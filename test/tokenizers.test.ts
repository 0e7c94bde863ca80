/**
 * The model's own tokenizers (engine/tokenizers/): ids against independent truth — the
 * gpt-tokenizer package (GPT-2 rebuilt as Hugging Face files), sentencepiece's own outputs (the
 * shared fixture and test/reference/tokenizers/sentencepiece.json), Python references written from
 * each format's definition (tiktoken.json, hf.json) — plus the offset contract on every case,
 * lossless round trips, one-line refusals of bad files, and the tokenizer search beside a model.
 */
import { test, describe } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Tokenizer } from '../engine/tokenizers/types';
import { gpt2Tokenizer, encodeIds, EOT_ID } from '../engine/tokenizers/gpt2';
import { loadHfTokenizer, BYTE_TO_UNICODE } from '../engine/tokenizers/hf';
import { loadTiktokenPickle } from '../engine/tokenizers/tiktoken';
import { loadSentencePiece, type SentencePieceTokenizer } from '../engine/tokenizers/sentencepiece';
import { compilePattern } from '../engine/tokenizers/pattern';
import { loadTokenizerFor } from '../engine/tokenizers/index';
import { BadInputError } from '../engine/errors';
import { PickleWriter } from './helpers/pickle-builder';
import reference = require('gpt-tokenizer/cjs/encoding/r50k_base');
import r50kRanks = require('gpt-tokenizer/cjs/bpeRanks/r50k_base');

/** The repository root: the first folder above this file with a package.json. */
const REPO = (() => {
  let d = __dirname;
  while (!fs.existsSync(path.join(d, 'package.json'))) {
    const up = path.dirname(d);
    if (up === d) throw new Error('cannot find the repository root from ' + __dirname);
    d = up;
  }
  return d;
})();
const REFERENCE = path.join(REPO, 'test', 'reference', 'tokenizers');
const SHARED_SP = path.join(REPO, '..', 'shared', 'fixtures', 'sentencepiece');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'headlens-tokenizers-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;
const referenceIds = (text: string): number[] => reference.encode(text, { disallowedSpecial: new Set() });

/**
 * The offset contract of types.ts: index is the position, tokens tile the text from baseOffset to
 * baseOffset + length, the text field is tokenText, tokenize gives encode's ids, and (lossless
 * tokenizers, well-formed text) decode(encode(x)) === x.
 */
function assertTiles(tok: Tokenizer, text: string, { lossless = true, baseOffset = 0 } = {}): void {
  const tokens = tok.tokenize(text, baseOffset);
  const label = `${tok.kind} ${JSON.stringify(text.slice(0, 40))}`;
  let at = baseOffset;
  tokens.forEach((t, i) => {
    assert.equal(t.index, i, label);
    assert.equal(t.start, at, `${label}: token ${i} starts at ${t.start}, the previous one ended at ${at}`);
    assert.ok(t.start <= t.end, `${label}: token ${i} has end ${t.end} < start ${t.start}`);
    assert.equal(t.text, tok.tokenText(t.id), label);
    at = t.end;
  });
  if (tokens.length) assert.equal(at, baseOffset + text.length, `${label}: tokens do not reach the end of the text`);
  assert.deepEqual(tokens.map((t) => t.id), tok.encode(text), `${label}: tokenize and encode disagree`);
  if (lossless) assert.equal(tok.decode(tok.encode(text)), text, `${label}: decode(encode(x)) !== x`);
}

/** A one-line BadInputError whose message names `file` and matches `pattern`. */
function assertRefused(fn: () => unknown, file: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadInputError, `expected BadInputError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `more than one line: ${e.message}`);
    assert.ok(e.message.includes(file), `does not name ${file}: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function writeTmp(name: string, content: string | Uint8Array): string {
  const file = path.join(TMP, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

/** Deterministic strings over characters that stress pre-tokenizers, normalizers and UTF-8. */
function randomTexts(count: number, maxLength: number, seed = 12345): string[] {
  const alphabet = ['a', 'Z', 'é', 'e\u0301', '日', '語', '🦊', '👩\u200d💻', '🇫🇷', ' ', '  ', '\t', '\r\n', '\n', "'s", "'LL", '7', '42', '.', '=', '-', '<|', '|>', 'ß', 'Ω', '\u00a0', 'Ａ', '½', 'ﬁ', '\u2581'];
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
const LONE_SURROGATES = ['x\ud800y', 'x\udc00y', 'end\ud83d', '\udc00\ud800'];

// ---------------------------------------------------------------------------------------------
// GPT-2 as a Tokenizer, and GPT-2 rebuilt as Hugging Face files

/** Bytes of r50k rank `id` (the package stores text, or bytes where they are not UTF-8). */
function r50kBytes(id: number): Uint8Array {
  const v = r50kRanks.default[id];
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Uint8Array.from(v);
}
const byteLevel = (bytes: Uint8Array): string => Array.from(bytes, (b) => BYTE_TO_UNICODE[b]).join('');

/**
 * GPT-2's merges from the rank table: token r (≥ 256) is the merge of the two parts that
 * byte-level BPE with only the ranks below r leaves of its bytes.
 */
function gpt2Merges(): [string, string][] {
  const rankOf = new Map<string, number>();
  for (let id = 0; id < EOT_ID; id++) rankOf.set(Buffer.from(r50kBytes(id)).toString('latin1'), id);
  const merges: [string, string][] = [];
  for (let id = 256; id < EOT_ID; id++) {
    let parts = Array.from(r50kBytes(id), (b) => String.fromCharCode(b));
    for (;;) {
      let best = -1;
      let bestRank = id;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = rankOf.get(parts[i] + parts[i + 1]);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) break;
      parts = [...parts.slice(0, best), parts[best] + parts[best + 1], ...parts.slice(best + 2)];
    }
    assert.equal(parts.length, 2, `r50k token ${id} is not one merge of two lower-ranked tokens`);
    merges.push([byteLevel(Buffer.from(parts[0], 'latin1')), byteLevel(Buffer.from(parts[1], 'latin1'))]);
  }
  return merges;
}

/** A GPT-2 folder with tokenizer.json and one with vocab.json + merges.txt, made from gpt-tokenizer's data. */
const GPT2_FOLDERS = (() => {
  const vocab: Record<string, number> = {};
  for (let id = 0; id < EOT_ID; id++) vocab[byteLevel(r50kBytes(id))] = id;
  vocab['<|endoftext|>'] = EOT_ID;
  const merges = gpt2Merges();
  const json = path.join(TMP, 'gpt2-json');
  writeTmp('gpt2-json/tokenizer.json', JSON.stringify({
    version: '1.0',
    added_tokens: [{ id: EOT_ID, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  }));
  writeTmp('gpt2-pair/vocab.json', JSON.stringify(vocab));
  writeTmp('gpt2-pair/merges.txt', '#version: 0.2\n' + merges.map(([a, b]) => `${a} ${b}\n`).join(''));
  return { json, pair: path.join(TMP, 'gpt2-pair') };
})();

describe('tokenizers: GPT-2', () => {
  const gpt2 = gpt2Tokenizer();

  test('the built-in GPT-2 as a Tokenizer gives the package ids and counts bytes', () => {
    assert.deepEqual(gpt2.encode(MIXED), referenceIds(MIXED));
    assert.equal(gpt2.vocabSize, 50257);
    assert.equal(gpt2.kind, 'gpt2');
    const ids = gpt2.encode(MIXED);
    assert.equal(ids.reduce((s, id) => s + gpt2.tokenBytes(id), 0), Buffer.byteLength(MIXED, 'utf8'));
    assert.equal(gpt2.tokenBytes(EOT_ID), 0);
    assert.ok(gpt2.specialIds.has(EOT_ID));
    assert.equal(gpt2.eosId, EOT_ID);
    assertTiles(gpt2, MIXED, { baseOffset: 7 });
  });

  for (const [form, folder] of [['tokenizer.json', GPT2_FOLDERS.json], ['vocab.json + merges.txt', GPT2_FOLDERS.pair]] as const) {
    describe(`GPT-2 as Hugging Face ${form}`, () => {
      const hf = loadHfTokenizer(folder);

      test('ids equal the gpt-tokenizer package on mixed, random and long texts', () => {
        assert.equal(hf.vocabSize, 50257);
        assert.deepEqual(hf.encode(MIXED), referenceIds(MIXED));
        for (const text of randomTexts(200, 60)) assert.deepEqual(hf.encode(text), referenceIds(text), JSON.stringify(text));
        for (const text of ['a'.repeat(2000), ' ' + 'abcdefghij'.repeat(150), '語'.repeat(500), '🦊'.repeat(200), '=-'.repeat(700)]) {
          assert.deepEqual(hf.encode(text), referenceIds(text), text.slice(0, 20));
        }
      });

      test('tokens and offsets equal the built-in GPT-2', () => {
        for (const text of [MIXED, ...randomTexts(50, 40, 99)]) assert.deepEqual(hf.tokenize(text, 3), gpt2.tokenize(text, 3));
      });

      test('<|endoftext|> is special, plain text in user text, and 0 bytes', () => {
        assert.ok(hf.specialIds.has(EOT_ID));
        assert.equal(hf.eosId, EOT_ID);
        assert.equal(hf.tokenBytes(EOT_ID), 0);
        assert.deepEqual(hf.encode('<|endoftext|>'), encodeIds('<|endoftext|>'));
        assert.equal(hf.decode([EOT_ID]), '<|endoftext|>');
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Small Hugging Face tokenizers made by scripts/reference/tokenizers_hf.py

interface HfReference {
  vocab_size: number;
  endoftext_id: number;
  pad_id: number;
  folders: Record<string, { text: string; ids: number[] }[]>;
}

describe('tokenizers: Hugging Face byte-level BPE', () => {
  const ref = readJson<HfReference>(path.join(REFERENCE, 'hf.json'));

  for (const [folder, cases] of Object.entries(ref.folders)) {
    test(`${folder}: ids equal the Python reference; offsets tile`, () => {
      const tok = loadHfTokenizer(path.join(REFERENCE, folder));
      assert.equal(tok.kind, 'hf-bpe');
      for (const c of cases) {
        assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
        // the prefix space of hf-bpe is not in the text: not lossless there
        assertTiles(tok, c.text, { lossless: folder !== 'hf-bpe' });
        if (folder === 'hf-bpe' && c.text && !c.text.startsWith(' ')) assert.equal(tok.decode(c.ids), ' ' + c.text);
      }
      for (const text of [...randomTexts(100, 40, 7), ...LONE_SURROGATES]) assertTiles(tok, text, { lossless: false });
    });
  }

  test('added tokens count in the vocabulary; special ones are specialIds with 0 bytes', () => {
    const tok = loadHfTokenizer(path.join(REFERENCE, 'hf-bpe', 'tokenizer.json'));
    assert.equal(tok.vocabSize, ref.vocab_size);
    assert.deepEqual([...tok.specialIds].sort((a, b) => a - b), [ref.endoftext_id, ref.pad_id]);
    assert.equal(tok.tokenText(ref.pad_id), '<|pad|>');
    assert.equal(tok.tokenBytes(ref.pad_id), 0);
    for (const c of ref.folders['hf-bpe']) {
      const bytes = c.ids.reduce((sum, id) => sum + tok.tokenBytes(id), 0);
      assert.equal(bytes, c.text ? Buffer.byteLength(c.text.startsWith(' ') ? c.text : ' ' + c.text) : 0, JSON.stringify(c.text));
    }
  });

  test('the prepended space has no character of its own: alone it is empty at 0, merged it is part of the first word', () => {
    const tok = loadHfTokenizer(path.join(REFERENCE, 'hf-bpe'));
    assert.deepEqual(tok.tokenize('Hello').slice(0, 2).map((t) => [t.text, t.start, t.end]), [[' ', 0, 0], ['H', 0, 1]]);
    assert.deepEqual(tok.tokenize('the world').slice(0, 2).map((t) => [t.text, t.start, t.end]), [[' the', 0, 3], [' w', 3, 5]]);
  });

  test('an id outside the vocabulary is bad input', () => {
    const tok = loadHfTokenizer(path.join(REFERENCE, 'hf-legacy'));
    for (const id of [tok.vocabSize, -1, 0.5]) {
      assert.throws(() => tok.decode([id]), BadInputError);
      assert.throws(() => tok.tokenText(id), BadInputError);
    }
  });

  const bpeModel = { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] };
  const byteLevelPre = { type: 'ByteLevel', add_prefix_space: false, use_regex: true };
  const refusals: [string, unknown, RegExp][] = [
    ['wordpiece.json', { model: { type: 'WordPiece', unk_token: '[UNK]', vocab: { '[UNK]': 0, a: 1 } }, pre_tokenizer: { type: 'BertPreTokenizer' } }, /WordPiece \(BERT-style\), not a byte-level BPE/],
    ['unigram.json', { model: { type: 'Unigram', vocab: [['a', -1]] } }, /Unigram/],
    ['nfkc.json', { model: bpeModel, normalizer: { type: 'NFKC' }, pre_tokenizer: byteLevelPre }, /NFKC normalizer, which this reader does not implement/],
    ['metaspace.json', { model: bpeModel, pre_tokenizer: { type: 'Metaspace', replacement: '▁' } }, /Metaspace/],
    ['no-byte-level.json', { model: bpeModel, pre_tokenizer: null }, /needs a ByteLevel pre-tokenizer/],
    ['suffix.json', { model: { ...bpeModel, end_of_word_suffix: '</w>' }, pre_tokenizer: byteLevelPre }, /end_of_word_suffix/],
    ['bad-merge.json', { model: { ...bpeModel, merges: ['a c'] }, pre_tokenizer: byteLevelPre }, /merge 1's second token "c" is not in the vocabulary/],
    ['three-part-merge.json', { model: { ...bpeModel, merges: ['a b c'] }, pre_tokenizer: byteLevelPre }, /merge 1 "a b c" is not two tokens/],
  ];
  for (const [name, content, pattern] of refusals) {
    test(`refused in one line: ${name}`, () => {
      const file = writeTmp(`hf-bad/${name}`, JSON.stringify(content));
      assertRefused(() => loadHfTokenizer(file), file, pattern);
    });
  }

  test('refused in one line: a tokenizer.json that is not JSON, a folder without tokenizer files', () => {
    const file = writeTmp('hf-garbage/tokenizer.json', '{"model": {"type": "BPE", "vocab": {');
    assertRefused(() => loadHfTokenizer(file), file, /not valid JSON/);
    const empty = path.join(TMP, 'hf-empty');
    fs.mkdirSync(empty, { recursive: true });
    assertRefused(() => loadHfTokenizer(empty), empty, /no tokenizer.json/);
  });
});

// ---------------------------------------------------------------------------------------------
// tiktoken pickles (autoresearch's tokenizer.pkl)

interface TiktokenReference {
  pat_str: string;
  n_vocab: number;
  special_tokens: Record<string, number>;
  cases: { text: string; ids: number[]; pieces: string[] }[];
  patterns: { name: string; pattern: string; pieces: string[][] }[];
  texts: string[];
}

describe('tokenizers: tiktoken pickle', () => {
  const ref = readJson<TiktokenReference>(path.join(REFERENCE, 'tiktoken.json'));
  const pkl = path.join(REFERENCE, 'tiktoken.pkl');
  const tok = loadTiktokenPickle(pkl);

  test('ids equal tiktoken’s algorithm in Python on every case; offsets tile; lossless', () => {
    assert.equal(tok.kind, 'tiktoken');
    for (const c of ref.cases) {
      assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
      assertTiles(tok, c.text);
    }
  });

  test('each token starts where its pattern piece does (the pieces of Python regex)', () => {
    for (const c of ref.cases) {
      const starts = new Set<number>();
      let at = 0;
      for (const p of c.pieces) {
        starts.add(at);
        at += p.length;
      }
      const tokens = tok.tokenize(c.text);
      const tokenStarts = new Set(tokens.map((t) => t.start).filter((s, i) => i === 0 || s > tokens[i - 1].start));
      for (const s of starts) if (s < c.text.length) assert.ok(tokenStarts.has(s), `${JSON.stringify(c.text)}: no token starts at piece start ${s}`);
    }
  });

  test('the translated split patterns give the pieces of Python regex (possessive, (?i:), \\p, \\s)', () => {
    for (const p of ref.patterns) {
      const regex = compilePattern(p.pattern, p.name);
      ref.texts.forEach((text, i) => {
        assert.deepEqual([...text.matchAll(regex)].map((m) => m[0]), p.pieces[i], `${p.name} on ${JSON.stringify(text.slice(0, 40))}`);
      });
    }
  });

  test('vocabulary, specials, BOS and bytes as autoresearch lays them out', () => {
    assert.equal(tok.vocabSize, ref.n_vocab);
    assert.deepEqual([...tok.specialIds].sort((a, b) => a - b), Object.values(ref.special_tokens).sort((a, b) => a - b));
    assert.equal(tok.bosId, ref.special_tokens['<|reserved_0|>']);
    for (const id of tok.specialIds) assert.equal(tok.tokenBytes(id), 0);
    assert.equal(tok.tokenText(ref.special_tokens['<|reserved_1|>']), '<|reserved_1|>');
    for (const c of ref.cases) assert.equal(c.ids.reduce((s, id) => s + tok.tokenBytes(id), 0), Buffer.byteLength(c.text, 'utf8'));
    // special-token text in user text is plain text (encode_ordinary)
    assert.ok(tok.encode('<|reserved_0|> x').length > 2);
    assert.ok(!tok.encode('<|reserved_0|> x').some((id) => tok.specialIds.has(id)));
  });

  test('lone surrogates and random strings tile', () => {
    for (const text of LONE_SURROGATES) {
      assert.deepEqual(tok.encode(text), tok.encode(text.replace(/[\ud800-\udfff]/g, '\uFFFD')));
      assertTiles(tok, text, { lossless: false });
    }
    for (const text of randomTexts(200, 50, 3)) assertTiles(tok, text);
  });

  test('refused in one line: a registered encoding pickled by name', () => {
    const file = path.join(REFERENCE, 'tiktoken-registered.pkl');
    assertRefused(() => loadTiktokenPickle(file), file, /registered tiktoken encoding 'cl100k_base'/);
  });

  test('refused in one line: a pickle that calls os.system, or builtins.eval by STACK_GLOBAL', () => {
    const system = writeTmp('tk-bad/system.pkl', new PickleWriter().proto(2).global('os', 'system').str('echo pwned').op(0x85, 0x52).stop().bytes());
    assertRefused(() => loadTiktokenPickle(system), system, /refused to load: the pickle calls 'os\.system'/);
    const evil = writeTmp('tk-bad/eval.pkl', new PickleWriter().proto(4).stackGlobal('builtins', 'eval').str('1+1').op(0x85, 0x52).stop().bytes());
    assertRefused(() => loadTiktokenPickle(evil), evil, /refused to load: the pickle calls 'builtins\.eval'/);
  });

  test('refused in one line: an Encoding whose state lacks its ranks, or is built with arguments', () => {
    const state = new Map<string, unknown>([['name', 'x'], ['pat_str', '\\s+'], ['special_tokens', new Map()]]);
    const noRanks = writeTmp('tk-bad/no-ranks.pkl', new PickleWriter().proto(4).stackGlobal('tiktoken.core', 'Encoding').op(0x29, 0x81).value(state).op(0x62).stop().bytes());
    assertRefused(() => loadTiktokenPickle(noRanks), noRanks, /'mergeable_ranks' is missing, expected a dict/);
    const withArgs = writeTmp('tk-bad/args.pkl', new PickleWriter().proto(4).stackGlobal('tiktoken.core', 'Encoding').str('rustbpe').op(0x85, 0x81).stop().bytes());
    assertRefused(() => loadTiktokenPickle(withArgs), withArgs, /constructs tiktoken's Encoding with arguments/);
    const truncated = writeTmp('tk-bad/truncated.pkl', fs.readFileSync(pkl).subarray(0, 2000));
    assertRefused(() => loadTiktokenPickle(truncated), truncated, /truncated pickle data/);
  });
});

// ---------------------------------------------------------------------------------------------
// SentencePiece

interface SpCase {
  text: string;
  ids: number[];
  pieces: string[];
  spans?: [number, number][];
  decoded: string;
}
interface SpModelReference {
  file: string;
  vocab_size: number;
  bos_id: number;
  eos_id: number;
  unk_id: number;
  types: Record<'control' | 'unknown' | 'unused' | 'byte', number[]>;
  cases: SpCase[];
  decode_cases: { ids: number[]; text: string }[];
  bpb_table: [number, boolean, boolean][];
}

const spFile = (ref: { file: string }): string => (ref.file.startsWith('shared:') ? path.join(REPO, '..', 'shared', 'fixtures', ref.file.slice('shared:'.length)) : path.join(REFERENCE, ref.file));

/**
 * Token starts against the library's own alignment (its [begin, end) per piece). The library
 * gives a character to the LAST piece made from it, Head Lens to the first: a token that begins
 * on a character starts where the library's span begins; one that begins inside a character's
 * pieces ("ﬁ" → "f" "i") starts where that character ends, the library's end for it. Where the
 * library's span is empty (all but the last byte piece) nothing is compared.
 */
function assertSpansAgree(tok: SentencePieceTokenizer, c: SpCase, label: string): void {
  const tokens = tok.tokenize(c.text);
  c.spans!.forEach(([begin, end], i) => {
    if (i === 0 || begin === end) return;
    assert.ok(tokens[i].start === begin || tokens[i].start === end, `${label}: token ${i} (${JSON.stringify(c.pieces[i])}) starts at ${tokens[i].start}; the library's span is [${begin}, ${end})`);
  });
}

function checkSpModel(ref: SpModelReference): void {
  const tok = loadSentencePiece(spFile(ref));

  test('ids, pieces and decoded text equal the library’s', () => {
    assert.equal(tok.kind, 'sentencepiece');
    assert.equal(tok.vocabSize, ref.vocab_size);
    for (const c of ref.cases) {
      const ids = tok.encode(c.text);
      assert.deepEqual(ids, c.ids, JSON.stringify(c.text));
      // the library names an <unk> by the text it stands for
      assert.deepEqual(ids.map((id, i) => (id === ref.unk_id ? c.pieces[i] : tok.pieceOf(id))), c.pieces, JSON.stringify(c.text));
      assert.equal(tok.decode(ids), c.decoded, JSON.stringify(c.text));
    }
  });

  test('offsets tile the original text and start where the library’s alignment does', () => {
    for (const c of ref.cases) {
      assertTiles(tok, c.text, { lossless: false });
      if (c.spans) assertSpansAgree(tok, c, `${ref.file} ${JSON.stringify(c.text.slice(0, 30))}`);
    }
    for (const text of [...randomTexts(200, 40, 5), ...LONE_SURROGATES]) assertTiles(tok, text, { lossless: false });
  });

  test('decoding id lists equals the library’s decode', () => {
    for (const c of ref.decode_cases) assert.equal(tok.decode(c.ids), c.text, JSON.stringify(c.ids));
  });

  test('bytesOf / hasLeadingSpace / isBoundary are parameter-golf’s byte table; tokenBytes counts "▁" as one byte', () => {
    ref.bpb_table.forEach(([base, lead, boundary], id) => {
      assert.deepEqual([tok.bytesOf(id), tok.hasLeadingSpace(id), tok.isBoundary(id)], [base, lead, boundary], `id ${id} ${JSON.stringify(tok.pieceOf(id))}`);
      const piece = tok.pieceOf(id);
      const expected = boundary ? 0 : ref.types.byte.includes(id) ? 1 : Buffer.byteLength(piece.replaceAll('\u2581', ' '));
      assert.equal(tok.tokenBytes(id), expected, `tokenBytes of ${id}`);
    });
  });

  test('special ids, BOS and EOS as the library reports them', () => {
    assert.deepEqual([...tok.specialIds].sort((a, b) => a - b), ref.types.control);
    assert.equal(tok.bosId ?? -1, ref.bos_id);
    assert.equal(tok.eosId ?? -1, ref.eos_id);
  });
}

describe('tokenizers: SentencePiece', () => {
  describe('shared fixture tiny-bpe.model (parameter-golf settings)', () => {
    const expected = readJson<{ cases: SpCase[]; bpb_table: { rows: [number, boolean, boolean][] } }>(path.join(SHARED_SP, 'tiny-bpe.expected.json'));
    const tok = loadSentencePiece(path.join(SHARED_SP, 'tiny-bpe.model'));

    test('ids, pieces and decoded text equal the fixture', () => {
      for (const c of expected.cases) {
        const ids = tok.encode(c.text);
        assert.deepEqual(ids, c.ids, JSON.stringify(c.text));
        assert.deepEqual(ids.map((id) => tok.pieceOf(id)), c.pieces);
        assert.equal(tok.decode(ids), c.decoded);
        assertTiles(tok, c.text, { lossless: false });
      }
    });

    test('bytesOf / hasLeadingSpace / isBoundary equal the fixture’s bpb_table', () => {
      expected.bpb_table.rows.forEach(([base, lead, boundary], id) => {
        assert.deepEqual([tok.bytesOf(id), tok.hasLeadingSpace(id), tok.isBoundary(id)], [base, lead, boundary], `id ${id}`);
      });
    });

    test('a character split into byte pieces belongs to the first; "½" → "1⁄2" belongs to "1"', () => {
      const emoji = tok.tokenize('x🙂');
      assert.deepEqual(emoji.map((t) => [t.start, t.end]), [[0, 1], [1, 3], [3, 3], [3, 3], [3, 3]]);
      const half = tok.tokenize('½');
      assert.deepEqual(half.map((t) => tok.pieceOf(t.id)), ['1', '<0xE2>', '<0x81>', '<0x84>', '2']);
      assert.deepEqual(half.map((t) => [t.start, t.end]), [[0, 1], [1, 1], [1, 1], [1, 1], [1, 1]]);
    });

    test('dropped whitespace belongs to the token before it (leading: the first)', () => {
      const tokens = tok.tokenize('  a   b  ');
      assert.deepEqual(tokens.map((t) => tok.pieceOf(t.id)), ['a', '\u2581b']);
      assert.deepEqual(tokens.map((t) => [t.start, t.end]), [[0, 3], [3, 9]]);
      assert.deepEqual(tok.tokenize('   '), []);
    });
  });

  const refs = readJson<{ models: SpModelReference[] }>(path.join(REFERENCE, 'sentencepiece.json'));
  for (const ref of refs.models) describe(`reference ${ref.file}`, () => checkSpModel(ref));

  test('sp-unused.model has UNUSED pieces, and encoding splits them like the library', () => {
    const unused = refs.models.find((m) => m.file === 'sp-unused.model')!;
    assert.ok(unused.types.unused.length > 0);
    const tok = loadSentencePiece(path.join(REFERENCE, 'sp-unused.model'));
    for (const c of unused.cases) for (const id of tok.encode(c.text)) assert.ok(!unused.types.unused.includes(id));
  });

  describe('bad model files', () => {
    const model = fs.readFileSync(path.join(SHARED_SP, 'tiny-bpe.model'));

    test('refused in one line: a truncated .model', () => {
      for (const cut of [model.length >> 1, 100, 7]) {
        const file = writeTmp(`sp-bad/truncated-${cut}.model`, model.subarray(0, cut));
        assertRefused(() => loadSentencePiece(file), file, /not a valid SentencePiece model \(protobuf .*\); the file is truncated/);
      }
    });

    test('refused in one line: a .model that is not a protobuf (text, JSON, zeros)', () => {
      for (const [name, content] of [['text.model', 'Hello, this is not a model at all.\n'], ['json.model', '{"model": "BPE"}'], ['zeros.model', Buffer.alloc(64)]] as const) {
        const file = writeTmp(`sp-bad/${name}`, content);
        assertRefused(() => loadSentencePiece(file), file, /not a valid SentencePiece model|no pieces/);
      }
    });

    test('refused in one line: a Unigram model, an empty file', () => {
      const unigram = writeTmp('sp-bad/unigram.model', protoModel([['<unk>', 0, 2], ['a', -1, 1]], 1));
      assertRefused(() => loadSentencePiece(unigram), unigram, /SentencePiece UNIGRAM model; only BPE/);
      const empty = writeTmp('sp-bad/empty.model', '');
      assertRefused(() => loadSentencePiece(empty), empty, /no pieces/);
      const noUnk = writeTmp('sp-bad/no-unk.model', protoModel([['a', 0, 1]], 2));
      assertRefused(() => loadSentencePiece(noUnk), noUnk, /no unknown piece/);
    });
  });
});

/** A ModelProto with `pieces` [text, score, type] and trainer_spec.model_type (protobuf written by hand). */
function protoModel(pieces: [string, number, number][], modelType: number): Buffer {
  const varint = (v: number): number[] => {
    const out: number[] = [];
    for (; v >= 0x80; v = Math.floor(v / 128)) out.push((v & 0x7f) | 0x80);
    return [...out, v];
  };
  const field = (num: number, payload: number[]): number[] => [...varint((num << 3) | 2), ...varint(payload.length), ...payload];
  const parts: number[] = [];
  for (const [text, score, type] of pieces) {
    const f = Buffer.alloc(4);
    f.writeFloatLE(score);
    parts.push(...field(1, [...field(1, [...Buffer.from(text)]), (2 << 3) | 5, ...f, (3 << 3) | 0, ...varint(type)]));
  }
  parts.push(...field(2, [(3 << 3) | 0, ...varint(modelType)]));
  return Buffer.from(parts);
}

// ---------------------------------------------------------------------------------------------
// Finding the tokenizer beside a model

describe('tokenizers: loadTokenizerFor', () => {
  const folderWith = (name: string, files: Record<string, string>): string => {
    for (const [f, source] of Object.entries(files)) writeTmp(`find/${name}/${f}`, fs.readFileSync(source));
    return path.join(TMP, 'find', name);
  };
  const ckpt = path.join(REPO, 'package.json'); // any file stands in for a checkpoint

  test('a folder without tokenizer files → the built-in GPT-2', () => {
    const folder = folderWith('none', { 'ckpt.pt': ckpt });
    const found = loadTokenizerFor(path.join(folder, 'ckpt.pt'));
    assert.equal(found.tokenizer.kind, 'gpt2');
    assert.equal(found.file, null);
    assert.match(found.description, /built in/);
  });

  test('tokenizer.pkl beside a checkpoint file; a .model in a tokenizers/ subfolder; a folder given as the model', () => {
    const pkl = folderWith('pkl', { 'model.pt': ckpt, 'tokenizer.pkl': path.join(REFERENCE, 'tiktoken.pkl') });
    const a = loadTokenizerFor(path.join(pkl, 'model.pt'));
    assert.equal(a.tokenizer.kind, 'tiktoken');
    assert.equal(a.file, path.join(pkl, 'tokenizer.pkl'));
    const sp = folderWith('sp', { 'final_model.ptz': ckpt, 'tokenizers/fineweb_8192_bpe.model': path.join(SHARED_SP, 'tiny-bpe.model') });
    const b = loadTokenizerFor(path.join(sp, 'final_model.ptz'));
    assert.equal(b.tokenizer.kind, 'sentencepiece');
    assert.match(b.description, /sentencepiece tokenizer from .*fineweb_8192_bpe\.model \(512 ids\)/);
    const hf = folderWith('hf', { 'model.safetensors': ckpt, 'vocab.json': path.join(REFERENCE, 'hf-legacy', 'vocab.json'), 'merges.txt': path.join(REFERENCE, 'hf-legacy', 'merges.txt') });
    assert.equal(loadTokenizerFor(hf).tokenizer.kind, 'hf-bpe');
  });

  test('a refused tokenizer.json falls back to a tokenizer.model beside it, and says so', () => {
    const folder = folderWith('both', { 'tokenizer.model': path.join(SHARED_SP, 'tiny-bpe.model') });
    writeTmp('find/both/tokenizer.json', JSON.stringify({ model: { type: 'Unigram', vocab: [] } }));
    const found = loadTokenizerFor(folder);
    assert.equal(found.tokenizer.kind, 'sentencepiece');
    assert.equal(found.skipped.length, 1);
    assert.match(found.skipped[0], /Unigram/);
  });

  test('only refused tokenizer files → the first refusal, not GPT-2', () => {
    const folder = path.join(TMP, 'find', 'broken');
    writeTmp('find/broken/tokenizer.model', 'not a model\n');
    assert.throws(() => loadTokenizerFor(folder), BadInputError);
  });

  test('an explicit hint wins; a hint that is not a tokenizer file is refused', () => {
    const folder = folderWith('hint', { 'tokenizer.pkl': path.join(REFERENCE, 'tiktoken.pkl') });
    const found = loadTokenizerFor(folder, path.join(REFERENCE, 'hf-split', 'tokenizer.json'));
    assert.equal(found.tokenizer.kind, 'hf-bpe');
    const notTokenizer = writeTmp('find/hint/model.pt', 'x');
    assertRefused(() => loadTokenizerFor(folder, notTokenizer), notTokenizer, /not a tokenizer file/);
  });
});

// ---------------------------------------------------------------------------------------------
// Speed (reported, not asserted)

describe('tokenizers: 1 MB of mixed text', () => {
  const text = (MIXED + randomTexts(40, 80, 11).join('\n') + '\n').repeat(1200).slice(0, 1 << 20);
  const cases: [string, () => Tokenizer][] = [
    ['gpt2 (built in)', () => gpt2Tokenizer()],
    ['hf-bpe GPT-2 tokenizer.json', () => loadHfTokenizer(GPT2_FOLDERS.json)],
    ['hf-bpe small (hf-bpe)', () => loadHfTokenizer(path.join(REFERENCE, 'hf-bpe'))],
    ['tiktoken (tiktoken.pkl)', () => loadTiktokenPickle(path.join(REFERENCE, 'tiktoken.pkl'))],
    ['sentencepiece (tiny-bpe.model)', () => loadSentencePiece(path.join(SHARED_SP, 'tiny-bpe.model'))],
    ['sentencepiece (sp-identity.model)', () => loadSentencePiece(path.join(REFERENCE, 'sp-identity.model'))],
  ];
  for (const [name, make] of cases) {
    test(name, (t) => {
      const tok = make();
      const started = performance.now();
      const tokens = tok.tokenize(text);
      const ms = performance.now() - started;
      t.diagnostic(`${name}: ${tokens.length} tokens from ${text.length} code units in ${ms.toFixed(0)} ms`);
      assert.equal(tokens.at(-1)!.end, text.length);
    });
  }
});
