#!/usr/bin/python3
"""Reference cases for Head Lens' tiktoken pickle reader (autoresearch's tokenizer.pkl).

Run with Debian's python3 and python3-regex (tiktoken itself is not needed):
    /usr/bin/python3 scripts/reference/tokenizers_tiktoken.py

(a) Trains a small rustbpe-like vocabulary: ids 0-255 are the single bytes, then merges learned
    by a plain BPE trainer over the pieces of autoresearch's split pattern, then the four
    <|reserved_N|> special tokens after them (as autoresearch's prepare.py lays them out).
(b) Pickles it exactly as `pickle.dump(tiktoken.Encoding)` does: a stand-in module
    `tiktoken.core` whose `Encoding` has tiktoken's own `__getstate__` (tiktoken/core.py: the
    registered-encoding shortcut, else the dict name/pat_str/mergeable_ranks/special_tokens), so
    the opcode stream is the real one: the class global, EMPTY_TUPLE NEWOBJ, the state, BUILD.
    A second pickle is of a "registered" encoding, whose state is its name only.
(c) Encodes test texts with tiktoken's algorithm written from its definition
    (`CoreBPE.encode_ordinary`: split with the pattern; a piece that is a whole token is that token,
    else byte pair merging, lowest rank first, leftmost on ties) using the `regex` module, which
    has possessive quantifiers and \\p classes like tiktoken's fancy-regex.

Writes test/reference/tokenizers/tiktoken.pkl, tiktoken-registered.pkl and tiktoken.json. The JSON
also holds, for several published split patterns, the pieces `regex.findall` gives on the texts,
so the JavaScript translation of each pattern can be checked piece by piece.
"""
import collections
import json
import os
import pickle
import sys
import types

import regex

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, 'test', 'reference', 'tokenizers')

# autoresearch prepare.py:48
SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
SPECIALS = ['<|reserved_%d|>' % i for i in range(4)]
NUM_MERGES = 600

# published patterns (tiktoken_ext/openai_public.py; Llama 3's tokenizer.json Split regex)
PATTERNS = {
    'autoresearch': SPLIT_PATTERN,
    'r50k': r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
    'cl100k': r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    'o200k': '|'.join([
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]),
    'llama3': r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    'gpt2': r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    # not a published pattern: every alternative matches differently when possessive/atomic
    # groups backtrack, so the translation of ?+ *+ ++ {n,m}+ (?>..) and (?i:..) is really tested
    'possessive-probe': r"""\d++\d|[a-z]{2,3}+[a-z]|(?>ab|a)b|\s*+\S|[A-Z]?+[A-Z]|(?i:[d-k]'s|ll|sk)|.""",
}

TRAINING_TEXT = """
The quick brown fox jumps over the lazy dog. It's what they're saying: we've got 12 dogs, I'm sure.
def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
for (let i = 0; i < n; i++) { total += values[i] * weights[i]; }
Attention heads attend to previous tokens; the induction head copies what followed last time.
Numbers like 3.14159, 2718281828 and 1,000,000 appear in text. Dates: 2024-05-21, 1999-12-31.
Unicode: naïve café, Straße, Ωμέγα, Здравствуй мир, 日本語のテキスト, 中文字符, 한국어 문장.
Emoji: 🙂 🚀 👩‍💻 🇫🇷 — and punctuation!!! ??? ... ;;; ---
""" * 3


def split(text, pattern=SPLIT_PATTERN):
    return regex.findall(pattern, text)


def train(text, num_merges):
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties: the smallest pair of ids)."""
    words = collections.Counter(tuple(piece.encode('utf-8')) for piece in split(text))
    vocab = {i: bytes([i]) for i in range(256)}
    words = {tuple(w): n for w, n in words.items()}
    for step in range(num_merges):
        pairs = collections.Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        new_id = 256 + step
        vocab[new_id] = vocab[best[0]] + vocab[best[1]]
        merged = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return {b: i for i, b in vocab.items()}


# ---- a stand-in for tiktoken's Encoding: same module, name and __getstate__ as tiktoken/core.py ----

def install_stub_tiktoken():
    package = types.ModuleType('tiktoken')
    package.__path__ = []
    core = types.ModuleType('tiktoken.core')
    registry = types.ModuleType('tiktoken.registry')
    registry.ENCODINGS = {}

    class Encoding:
        def __init__(self, name, *, pat_str, mergeable_ranks, special_tokens, explicit_n_vocab=None):
            self.name = name
            self._pat_str = pat_str
            self._mergeable_ranks = mergeable_ranks
            self._special_tokens = special_tokens
            self.max_token_value = max(max(mergeable_ranks.values()), max(special_tokens.values(), default=0))

        # tiktoken/core.py, Encoding.__getstate__ (unchanged since tiktoken 0.6)
        def __getstate__(self):
            import tiktoken.registry

            # As an optimisation, pickle registered encodings by reference
            if self is tiktoken.registry.ENCODINGS.get(self.name):
                return self.name
            return {
                'name': self.name,
                'pat_str': self._pat_str,
                'mergeable_ranks': self._mergeable_ranks,
                'special_tokens': self._special_tokens,
            }

    Encoding.__module__ = 'tiktoken.core'
    Encoding.__qualname__ = 'Encoding'
    core.Encoding = Encoding
    package.core = core
    package.registry = registry
    sys.modules.update({'tiktoken': package, 'tiktoken.core': core, 'tiktoken.registry': registry})
    return Encoding, registry


# ---- tiktoken's encode_ordinary, from its definition ----

def byte_pair_encode(piece, ranks):
    parts = [bytes([b]) for b in piece]
    while True:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return [ranks[p] for p in parts]


def encode_ordinary(text, ranks):
    ids = []
    for piece in split(text):
        b = piece.encode('utf-8')
        ids.extend([ranks[b]] if b in ranks else byte_pair_encode(b, ranks))
    return ids


TEXTS = [
    '',
    'Hello world',
    "I'll say it's 3.14159, they're sure we've 12 o'clock. DON'T SHOUT, WE'LL SEE, THEY'RE HERE, I'D, YOU'VE",
    "mixed case: 'S 'T 'Ll 'lL 'Ve 'RE 'ſ ('long s' folds to s) and 'K, Kelvin \u212a's, SK ſK sK abab aab",
    'possessive: 12345 abcdabcde ABC  \t x abc ab aab hK\u212a', 
    'line one\r\nline two\r\n\r\nline four\n',
    '\tindented\n\t\tmore\t\tx\t',
    'many    spaces      here          and at the end      ',
    '   \n\n\t  \r\n ',
    'digits 1 12 123 1234 12345 123456 3.14159 2024-05-21 ١٢٣ ⅷ ²³',
    'punctuation!!!\n\n...???\r\n;;; --- ===\n\n\n(){}[]<>',
    ' !!! x ??\r\n\r\n  ...\n',
    '日本語のテキスト and 中文字符 and 한국어 문장',
    'emoji 🙂🚀 👩\u200d💻 🇫🇷🇩🇪 1\ufe0f\u20e3 🦊🦊🦊',
    'combining e\u0301 a\u0308 n\u0303 and precomposed é ä ñ',
    'white space kinds: nbsp\u00a0here, NEL\u0085there, BOM\ufeffhere, \u2003em\u3000ideographic, FS\x1cGS\x1d',
    'def softmax(x, axis=-1):\n    e = np.exp(x - x.max())\n    return e / e.sum()\n',
    '<|reserved_0|> is plain text here <|endoftext|>',
    'a' * 500,
    ' ' * 200 + 'x',
    '1234567890' * 20,
    '=-' * 150,
    'Straße Ωμέγα Здравствуй мир',
]


HARD_PIECES = ['a', 'Z', 'é', 'e\u0301', '日', '語', '🦊', '👩\u200d💻', '🇫🇷', ' ', '  ', '\t', '\r\n', '\n', "'s", "'S",
               "'LL", "'ve", "'ſ", '7', '42', '123', '.', '!!', '=', '-', '<|', '|>', 'ß', 'Ω', '\u00a0', '\u0085', '\ufeff',
               '\x1c', 'the', ' of', 'ing', 'DON', "'T", '\u3000', '٣', '²']


def random_texts(count, max_pieces, seed):
    """Strings of characters that stress the split pattern and the merges."""
    import random
    rnd = random.Random(seed)
    return [''.join(rnd.choice(HARD_PIECES) for _ in range(rnd.randint(1, max_pieces))) for _ in range(count)]


TEXTS += random_texts(100, 30, 77)


def main():
    os.makedirs(OUT, exist_ok=True)
    ranks = train(TRAINING_TEXT, NUM_MERGES)
    n = len(ranks)
    specials = {s: n + i for i, s in enumerate(SPECIALS)}
    Encoding, registry = install_stub_tiktoken()
    enc = Encoding('rustbpe', pat_str=SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    with open(os.path.join(OUT, 'tiktoken.pkl'), 'wb') as f:
        pickle.dump(enc, f)  # what autoresearch's prepare.py does
    registered = Encoding('cl100k_base', pat_str=SPLIT_PATTERN, mergeable_ranks={bytes([i]): i for i in range(256)},
                          special_tokens={})
    registry.ENCODINGS['cl100k_base'] = registered
    with open(os.path.join(OUT, 'tiktoken-registered.pkl'), 'wb') as f:
        pickle.dump(registered, f)
    report = {
        'made_by': 'scripts/reference/tokenizers_tiktoken.py (python %s, regex %s)' % (
            sys.version.split()[0], regex.__version__),
        'pkl': 'tiktoken.pkl',
        'name': 'rustbpe',
        'pat_str': SPLIT_PATTERN,
        'n_vocab': n + len(specials),
        'special_tokens': specials,
        'cases': [{'text': t, 'ids': encode_ordinary(t, ranks), 'pieces': split(t)} for t in TEXTS],
        'patterns': [{'name': name, 'pattern': pat, 'pieces': [[m.group(0) for m in regex.finditer(pat, t)] for t in TEXTS]}
                     for name, pat in PATTERNS.items()],
        'texts': TEXTS,
    }
    with open(os.path.join(OUT, 'tiktoken.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, ensure_ascii=True, indent=1)
        f.write('\n')
    print('vocab', report['n_vocab'], 'merges', n - 256, file=sys.stderr)


if __name__ == '__main__':
    main()
