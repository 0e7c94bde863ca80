#!/usr/bin/python3
"""Reference cases for Head Lens' SentencePiece reader, made by the sentencepiece library itself.

Run with Debian's python3 and python3-sentencepiece (0.1.97):
    /usr/bin/python3 scripts/reference/tokenizers_sp.py

It writes into test/reference/tokenizers/:
  sp-identity.model  BPE, identity normalizer, add_dummy_prefix, extra whitespace kept, no byte
                     fallback (unknown characters become <unk>), user-defined and control symbols
  sp-suffix.model    BPE, nfkc normalizer, whitespace as suffix, byte fallback
  sp-unused.model    sp-identity.model with some merged pieces marked UNUSED (re-serialised by the
                     small protobuf writer below), to exercise the library's re-segmentation
  sentencepiece.json for each model (and the shared fixture ../shared/fixtures/sentencepiece/
                     tiny-bpe.model): per text the library's ids, pieces, decoded text and each
                     piece's [begin, end) in UTF-16 code units of the text; decode cases (id lists
                     -> text); the parameter-golf byte table of the model.

Models are trained from a corpus generated here (deterministic), with one thread.
"""
import io
import json
import os
import random
import sys

import sentencepiece as spm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, 'test', 'reference', 'tokenizers')
SHARED_MODEL = os.path.join(REPO, '..', 'shared', 'fixtures', 'sentencepiece', 'tiny-bpe.model')


def corpus():
    """A few thousand lines of mixed prose, code and numbers (seeded)."""
    rnd = random.Random(20240521)
    words = ('the of and to in is that for it as with was on be by this are from at or an have not '
             'which but all were when we there can more if no out so said what up its about into than '
             'them only some time could these two may first then do any like my now over such our man '
             'me even most made after also did many before must through back years where much your way '
             'well down should because each just those people how too little state good very make world '
             'still own see men work long get here between both life being under never day same another '
             'know while last might us great old year off come since against go came right used take '
             'token model attention head layer softmax gradient tensor python function return value').split()
    code = ['def f(x):', '    return x * 2', 'for i in range(10):', '\tprint(i, end=" ")',
            'if (a !== b) { console.log(a); }', 'x = np.exp(x - x.max())', 'import numpy as np',
            '# comment: über naïve café', 'y = [1, 2, 3]  # list', 'while True: break']
    lines = []
    for n in range(4000):
        kind = rnd.random()
        if kind < 0.7:
            k = rnd.randint(3, 14)
            line = ' '.join(rnd.choice(words) for _ in range(k))
            if rnd.random() < 0.3:
                line = line.capitalize() + '.'
            if rnd.random() < 0.2:
                line += ' %d' % rnd.randint(0, 99999)
        elif kind < 0.9:
            line = rnd.choice(code)
        else:
            line = rnd.choice(['Numbers: 3.14159 and 2718281828', 'Dates 2024-05-21, 1999-12-31',
                               'Prices $19.99 €5 £3', 'Fullwidth ＡＢＣ１２３ text', 'café naïve résumé',
                               'tag <tag> and @@ marks', 'Ünïcödé wörds ärë hérë'])
        lines.append(line)
    return lines


def train(**kwargs):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus()), model_writer=model,
                                   model_type='bpe', num_threads=1, minloglevel=2, **kwargs)
    return model.getvalue()


# ---- a minimal protobuf reader/writer, just enough to flip piece types in a ModelProto ----

def read_varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def fields(b):
    """Top-level (field number, wire type, raw value bytes incl. nothing of the key) of a message."""
    i, out = 0, []
    while i < len(b):
        key, i = read_varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            start = i
            _, i = read_varint(b, i)
            out.append((num, wt, b[start:i]))
        elif wt == 1:
            out.append((num, wt, b[i:i + 8]))
            i += 8
        elif wt == 2:
            n, i = read_varint(b, i)
            out.append((num, wt, b[i:i + n]))
            i += n
        elif wt == 5:
            out.append((num, wt, b[i:i + 4]))
            i += 4
        else:
            raise ValueError('unsupported wire type %d' % wt)
    return out


def serialize(fs):
    out = bytearray()
    for num, wt, raw in fs:
        out += varint(num << 3 | wt)
        if wt == 2:
            out += varint(len(raw))
        out += raw
    return bytes(out)


def mark_unused(model_bytes, piece_texts):
    """Sets type UNUSED (5) on the pieces whose text is in `piece_texts`."""
    top = fields(model_bytes)
    result = []
    for num, wt, raw in top:
        if num == 1:  # ModelProto.pieces
            sub = fields(raw)
            text = next(r for n, _, r in sub if n == 1).decode('utf-8')
            if text in piece_texts:
                sub = [f for f in sub if f[0] != 3] + [(3, 0, varint(5))]
                raw = serialize(sub)
        result.append((num, wt, raw))
    return serialize(result)


# ---- the reference cases ----

TEXTS = [
    '',
    'x',
    'Hello world',
    'The quick brown fox jumps over 1234567 lazy dogs.',
    '  leading spaces and trailing   ',
    'runs   of    spaces\t\ttabs\t and  mixed \t\t  ',
    'line one\r\nline two\r\n\r\nline four\n',
    '\n\n\nnewlines first',
    '    ',
    ' ',
    'def softmax(x, axis=-1):\n    e = np.exp(x - x.max())\n    return e / e.sum()\n',
    'naïve café — “quotes” and ½ fractions',
    'combining: e\u0301 a\u0308 n\u0303 (decomposed) vs é ä ñ',
    'Fullwidth ＡＢＣ１２３ and ﬁ ligature ㍿ ①②③ and ™',
    '日本語のテキスト and 中文 and 한국어',
    'emoji 🙂🚀 👩\u200d💻 🇫🇷 1\ufe0f\u20e3',
    'digits 0 12 345 6789 3.14159 2024-05-21 1e-10',
    'tag <tag> and @@ marks, <ctl> and <s> </s> <unk> literal',
    'U+2581 itself: \u2581 and \u2581\u2581x',
    'zero\u200bwidth and soft\u00adhyphen and nbsp\u00a0here and\u3000ideographic',
    'controls \x01\x02\x7f and nul \x00 end',
    'a' * 300,
    ' ' * 50 + 'b' + ' ' * 50,
    'the ' * 200,
    '1234567890' * 30,
    'Ünïcödé wörds ärë hérë, DON\'T SHOUT, don\'t whisper.',
    '🙂' * 20,
]


HARD_PIECES = ['a', 'Z', 'é', 'e\u0301', '日', '語', '🦊', '👩\u200d💻', '🇫🇷', ' ', '  ', '\t', '\r\n', '\n', "'s",
               "'LL", '7', '42', '.', '=', '-', '<|', '|>', 'ß', 'Ω', '\u00a0', 'Ａ', '½', 'ﬁ', '\u2581', '<tag>', '@@',
               'the', ' of', 'ing', '\u3000', '①', '™', '\u200b']


def random_texts(count, max_pieces, seed):
    """Strings of characters that stress the normalizer, the merges and the alignment."""
    rnd = random.Random(seed)
    return [''.join(rnd.choice(HARD_PIECES) for _ in range(rnd.randint(1, max_pieces))) for _ in range(count)]


TEXTS += random_texts(80, 30, 2024)


def utf16_offsets(text):
    """Code point index -> UTF-16 code unit index."""
    units = [0]
    for ch in text:
        units.append(units[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return units


def encode_cases(sp):
    cases = []
    for text in TEXTS:
        proto = sp.encode_as_immutable_proto(text)
        units = utf16_offsets(text)
        cases.append({
            'text': text,
            'ids': [p.id for p in proto.pieces],
            'pieces': [p.piece for p in proto.pieces],
            # the library's own alignment: code point offsets into text, as UTF-16 code units here
            'spans': [[units[p.begin], units[p.end]] for p in proto.pieces],
            'decoded': sp.decode([p.id for p in proto.pieces]),
        })
    return cases


def decode_cases(sp):
    rnd = random.Random(7)
    n = sp.get_piece_size()
    special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
    byte_ids = [i for i in range(n) if sp.is_byte(i)]
    lists = [[], special, special[::-1] + [10, 11, 12]]
    for _ in range(40):
        k = rnd.randint(1, 12)
        pool = list(range(n)) if rnd.random() < 0.6 or not byte_ids else byte_ids + special
        lists.append([rnd.choice(pool) for _ in range(k)])
    return [{'ids': ids, 'text': sp.decode(ids)} for ids in lists]


def bpb_table(sp):
    """parameter-golf's lookup tables: base bytes, leading space, boundary, per id."""
    rows = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            rows.append([0, False, True])
            continue
        if sp.is_byte(i):
            rows.append([1, False, False])
            continue
        piece = sp.id_to_piece(i)
        lead = piece.startswith('\u2581')
        if lead:
            piece = piece[1:]
        rows.append([len(piece.encode('utf-8')), lead, False])
    return rows


def describe(sp, file, model_bytes, settings):
    return {
        'file': file,
        'settings': settings,
        'vocab_size': sp.get_piece_size(),
        'bos_id': sp.bos_id(), 'eos_id': sp.eos_id(), 'unk_id': sp.unk_id(), 'pad_id': sp.pad_id(),
        'types': {kind: [i for i in range(sp.get_piece_size()) if test(i)] for kind, test in [
            ('control', sp.is_control), ('unknown', sp.is_unknown), ('unused', sp.is_unused), ('byte', sp.is_byte)]},
        'cases': encode_cases(sp),
        'decode_cases': decode_cases(sp),
        'bpb_table': bpb_table(sp),
    }


def compact_json(value, depth=0):
    """JSON with one line per case / table row, so diffs stay readable and the file small."""
    if depth >= 4 or not isinstance(value, (dict, list)) or not value:
        return json.dumps(value, ensure_ascii=True, separators=(',', ':'))
    pad = ' ' * (depth + 1)
    if isinstance(value, dict):
        items = ['%s%s: %s' % (pad, json.dumps(k), compact_json(v, depth + 1)) for k, v in value.items()]
        return '{\n' + ',\n'.join(items) + '\n' + ' ' * depth + '}'
    items = [pad + compact_json(v, depth + 1) for v in value]
    return '[\n' + ',\n'.join(items) + '\n' + ' ' * depth + ']'


def main():
    os.makedirs(OUT, exist_ok=True)
    identity_settings = dict(vocab_size=320, normalization_rule_name='identity', add_dummy_prefix=True,
                             remove_extra_whitespaces=False, byte_fallback=False, character_coverage=0.995,
                             user_defined_symbols=['<tag>', '@@'], control_symbols=['<ctl>'],
                             pad_id=-1, unk_id=0, bos_id=1, eos_id=2)
    suffix_settings = dict(vocab_size=400, normalization_rule_name='nfkc', treat_whitespace_as_suffix=True,
                           add_dummy_prefix=True, remove_extra_whitespaces=True, byte_fallback=True,
                           split_digits=False, pad_id=0, unk_id=1, bos_id=2, eos_id=3)
    identity = train(**identity_settings)
    suffix = train(**suffix_settings)
    probe = spm.SentencePieceProcessor(model_proto=identity)
    # mark some frequent merged pieces unused: encoding must merge through them and split them again
    unused_pieces = [probe.id_to_piece(i) for i in range(probe.get_piece_size())
                     if len(probe.id_to_piece(i).lstrip('\u2581')) >= 2 and not probe.is_control(i)
                     and not probe.is_unknown(i) and probe.id_to_piece(i) not in ('<tag>', '@@')][:6]
    unused = mark_unused(identity, set(unused_pieces))
    models = {}
    for name, blob in [('sp-identity.model', identity), ('sp-suffix.model', suffix), ('sp-unused.model', unused)]:
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(blob)
        models[name] = blob
    with open(SHARED_MODEL, 'rb') as f:
        shared = f.read()
    report = {
        'made_by': 'sentencepiece %s (Python), scripts/reference/tokenizers_sp.py' % spm.__version__,
        'models': [
            describe(spm.SentencePieceProcessor(model_proto=shared), 'shared:sentencepiece/tiny-bpe.model', shared,
                     {'see': '../shared/fixtures/sentencepiece/README.md'}),
            describe(spm.SentencePieceProcessor(model_proto=identity), 'sp-identity.model', identity,
                     identity_settings),
            describe(spm.SentencePieceProcessor(model_proto=suffix), 'sp-suffix.model', suffix, suffix_settings),
            describe(spm.SentencePieceProcessor(model_proto=unused), 'sp-unused.model', unused,
                     dict(identity_settings, unused_pieces=unused_pieces)),
        ],
    }
    with open(os.path.join(OUT, 'sentencepiece.json'), 'w', encoding='utf-8') as f:
        f.write(compact_json(report) + '\n')
    for m in report['models']:
        print(m['file'], m['vocab_size'], 'cases', len(m['cases']), file=sys.stderr)


if __name__ == '__main__':
    main()
