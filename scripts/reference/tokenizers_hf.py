#!/usr/bin/python3
"""Small Hugging Face byte-level BPE tokenizers and their reference ids, for Head Lens' hf.ts.

Run with Debian's python3 and python3-regex (Hugging Face's libraries are not needed):
    /usr/bin/python3 scripts/reference/tokenizers_hf.py

Learns ~300 merges from a small corpus (plain BPE over GPT-2 pre-tokenizer pieces written in
GPT-2's byte-level alphabet), then writes into test/reference/tokenizers/:
  hf-bpe/tokenizer.json    merges as ["a", "b"] pairs; pre_tokenizer Sequence[ByteLevel
                           (add_prefix_space, use_regex)]; added tokens, one of them beyond the
                           model vocabulary
  hf-legacy/vocab.json, merges.txt   the older pair ("#version" first line), no prefix space
  hf-split/tokenizer.json  merges as "a b" strings; Sequence[Split(Llama-3 regex, Isolated),
                           ByteLevel(use_regex=false)]
  hf.json                  per folder and text: the ids

The ids come from byte-level BPE as GPT-2's encoder.py defines it (repeatedly take the adjacent
pair with the lowest merge rank and merge every occurrence of it, left to right), applied per
pre-tokenizer piece; for merges learned this way that is the same as Hugging Face's one merge at a
time (lowest rank, leftmost). Added tokens in the text are plain text (Head Lens' rule).
"""
import json
import os

import regex

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, 'test', 'reference', 'tokenizers')

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
NUM_MERGES = 300

CORPUS = """
The quick brown fox jumps over the lazy dog. It's what they're saying: we've got 12 dogs, I'm sure.
def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
Attention heads attend to previous tokens; the induction head copies what followed last time.
Numbers like 3.14159 and 2718281828 appear in text. Unicode: naïve café, Straße, 日本語, 🙂.
""" * 4

TEXTS = [
    '',
    'Hello world',
    ' leading space',
    "I'll say it's 3.14159, they're sure we've 12 o'clock. DON'T SHOUT",
    'line one\r\nline two\r\n\r\nline four\n',
    '\tindented\n\t\tmore\t\tx\t',
    'many    spaces      here          and at the end      ',
    '日本語のテキスト and 中文 and 한국어',
    'emoji 🙂🚀 👩\u200d💻 🇫🇷 and combining e\u0301',
    'def softmax(x, axis=-1):\n    e = np.exp(x - x.max())\n    return e / e.sum()\n',
    '<|endoftext|> and <|pad|> are plain text here',
    'digits 1234567890 and 3.14159',
    'a' * 200,
    'the the the the the',
]


def bytes_to_unicode():
    """GPT-2's byte → printable character table: printable bytes stay, the rest go to U+0100 on."""
    keep = list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    order = keep + [b for b in range(256) if b not in keep]  # encoder.json's id order
    return table, order


BYTE_CHAR, BYTE_ORDER = bytes_to_unicode()


def byte_level(s):
    return ''.join(BYTE_CHAR[b] for b in s.encode('utf-8'))


def learn_merges(text, count):
    words = {}
    for piece in regex.findall(GPT2_PATTERN, text):
        w = tuple(byte_level(piece))
        words[w] = words.get(w, 0) + 1
    merges = []
    for _ in range(count):
        pairs = {}
        for w, n in words.items():
            for pair in zip(w, w[1:]):
                pairs[pair] = pairs.get(pair, 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return merges


def gpt2_bpe(symbols, ranks):
    """encoder.py's bpe(): merge every occurrence of the best-ranked pair, until none ranks."""
    word = list(symbols)
    while len(word) > 1:
        ranked = [(ranks[p], p) for p in zip(word, word[1:]) if p in ranks]
        if not ranked:
            break
        first, second = min(ranked)[1]
        out, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                out.append(first + second)
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = out
    return word


def isolated_split(text, pattern):
    """Split with behavior Isolated: matches and the gaps between them are all pieces."""
    pieces, at = [], 0
    for m in regex.finditer(pattern, text):
        if m.start() > at:
            pieces.append(text[at:m.start()])
        if m.end() > m.start():
            pieces.append(m.group())
        at = m.end()
    if at < len(text):
        pieces.append(text[at:])
    return pieces


def encode(text, vocab, ranks, prefix_space, split_pattern, byte_level_regex):
    pieces = [text] if text else []
    if split_pattern:
        pieces = [p for t in pieces for p in isolated_split(t, split_pattern)]
    if prefix_space:
        pieces = [p if p.startswith(' ') else ' ' + p for p in pieces]
    if byte_level_regex:
        pieces = [p for t in pieces for p in isolated_split(t, GPT2_PATTERN)]
    ids = []
    for p in pieces:
        ids.extend(vocab[s] for s in gpt2_bpe(byte_level(p), ranks))
    return ids


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(value, f, ensure_ascii=False, indent=1)
        f.write('\n')


def main():
    merges = learn_merges(CORPUS, NUM_MERGES)
    vocab = {BYTE_CHAR[b]: i for i, b in enumerate(BYTE_ORDER)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab['<|endoftext|>'] = len(vocab)
    pad_id = len(vocab)  # only in added_tokens
    ranks = {pair: r for r, pair in enumerate(merges)}
    added = [
        {'id': vocab['<|endoftext|>'], 'content': '<|endoftext|>', 'single_word': False, 'lstrip': False,
         'rstrip': False, 'normalized': False, 'special': True},
        {'id': pad_id, 'content': '<|pad|>', 'single_word': False, 'lstrip': False, 'rstrip': False,
         'normalized': False, 'special': True},
    ]

    def tokenizer_json(merges_value, pre_tokenizer):
        return {
            'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added,
            'normalizer': None, 'pre_tokenizer': pre_tokenizer,
            'post_processor': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': False, 'use_regex': True},
            'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
            'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                      'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                      'vocab': vocab, 'merges': merges_value},
        }

    write_json(os.path.join(OUT, 'hf-bpe', 'tokenizer.json'), tokenizer_json(
        [[a, b] for a, b in merges],
        {'type': 'Sequence', 'pretokenizers': [
            {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True}]}))
    write_json(os.path.join(OUT, 'hf-legacy', 'vocab.json'), vocab)
    with open(os.path.join(OUT, 'hf-legacy', 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join('%s %s\n' % m for m in merges))
    write_json(os.path.join(OUT, 'hf-split', 'tokenizer.json'), tokenizer_json(
        ['%s %s' % m for m in merges],
        {'type': 'Sequence', 'pretokenizers': [
            {'type': 'Split', 'pattern': {'Regex': LLAMA3_PATTERN}, 'behavior': 'Isolated', 'invert': False},
            {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': False}]}))
    cases = {
        'hf-bpe': dict(prefix_space=True, split_pattern=None, byte_level_regex=True),
        'hf-legacy': dict(prefix_space=False, split_pattern=None, byte_level_regex=True),
        'hf-split': dict(prefix_space=False, split_pattern=LLAMA3_PATTERN, byte_level_regex=False),
    }
    write_json(os.path.join(OUT, 'hf.json'), {
        'made_by': 'scripts/reference/tokenizers_hf.py (regex %s)' % regex.__version__,
        'vocab_size': pad_id + 1,
        'endoftext_id': vocab['<|endoftext|>'],
        'pad_id': pad_id,
        'merges': len(merges),
        'folders': {name: [{'text': t, 'ids': encode(t, vocab, ranks, **opts)} for t in TEXTS]
                    for name, opts in cases.items()},
    })


if __name__ == '__main__':
    main()
