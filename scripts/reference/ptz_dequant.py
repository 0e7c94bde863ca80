#!/usr/bin/python3
"""Reference values for test/ptz.test.ts: the parameter-golf `.ptz` artifact dequantized with torch.

Written from the format as the fixture README (shared/fixtures/paramgolf/README.md, section
"<case>.ptz") defines it, independently of the TypeScript reader:

  brotli-decompress → header b"BSHF" + stride byte → un-shuffle (the payload holds the bytes at
  positions ≡ 0 mod stride first, then ≡ 1, …; plane p has n//stride + (p < n % stride) bytes)
  → torch.load → {"w": tensors, "m": name → kind} → dequantize (passthrough: fp16 → float32;
  otherwise q.float() * scale.float() with one scale per leading-axis row, or one scalar scale)
  → rebank the flat per-block matrices into qo_bank / kv_bank / mlp_up_bank / mlp_down_bank.

For every rebanked tensor it writes the shape, float64 sum and sum of squares of the float32
values, the first and last 16 values (float32, printed exactly as doubles) and the sha256 of
the float32 little-endian bytes; for every quantized flat tensor its kind, q range and scales
(fp16 widened to float, exact), so the test can derive quantisation bounds from the scales.

Run: /usr/bin/python3 scripts/reference/ptz_dequant.py  (needs torch and python3-brotli)
"""
import collections
import hashlib
import io
import json
import os
import re

import brotli
import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(REPO, '..', 'shared', 'fixtures', 'paramgolf', 'tiny-gated.ptz')
OUT = os.path.join(REPO, 'test', 'reference', 'paramgolf', 'tiny-gated.dequant.json')

# flat per-block matrix name → (bank, row offset in units of num_layers)
BANK_OF = {
    'attn.c_q': ('qo_bank', 0),
    'attn.proj': ('qo_bank', 1),
    'attn.c_k': ('kv_bank', 0),
    'attn.c_v': ('kv_bank', 1),
    'mlp.fc': ('mlp_up_bank', 0),
    'mlp.proj': ('mlp_down_bank', 0),
}
BANK_MEMBER = re.compile(r'^blocks\.(\d+)\.(attn\.c_q|attn\.proj|attn\.c_k|attn\.c_v|mlp\.fc|mlp\.proj)\.weight$')


def unshuffle(blob):
    assert blob[:4] == b'BSHF', 'no BSHF header'
    stride = blob[4]
    payload = np.frombuffer(blob, dtype=np.uint8, offset=5)
    n = payload.size
    out = np.empty(n, dtype=np.uint8)
    start = 0
    for plane in range(stride):
        count = n // stride + (1 if plane < n % stride else 0)
        out[plane::stride] = payload[start:start + count]
        start += count
    assert start == n
    return stride, out.tobytes()


def dequantize(w, m):
    flat = collections.OrderedDict()
    for name, kind in m.items():
        if kind == 'passthrough (float16)':
            assert w[name].dtype == torch.float16, name
            flat[name] = w[name].float()
            continue
        assert kind == 'int8_per_row' or re.fullmatch(r'gptq \(int\d\)', kind), kind
        q, scale = w[name + '.q'], w[name + '.scale']
        assert q.dtype == torch.int8 and scale.dtype == torch.float16, name
        if scale.dim() == 0:
            flat[name] = q.float() * scale.float()
        else:
            flat[name] = q.float() * scale.float().reshape(q.shape[0], *([1] * (q.dim() - 1)))
    return flat


def rebank(flat):
    layers = 1 + max(int(BANK_MEMBER.match(k).group(1)) for k in flat if BANK_MEMBER.match(k))
    out = collections.OrderedDict()
    stacks = collections.defaultdict(dict)
    for name, t in flat.items():
        hit = BANK_MEMBER.match(name)
        if not hit:
            continue
        bank, half = BANK_OF[hit.group(2)]
        stacks[bank][half * layers + int(hit.group(1))] = t
    for bank in ('qo_bank', 'kv_bank', 'mlp_up_bank', 'mlp_down_bank'):
        rows = stacks[bank]
        assert sorted(rows) == list(range(len(rows))), bank
        out[bank] = torch.stack([rows[i] for i in range(len(rows))])
    for name, t in flat.items():
        if not BANK_MEMBER.match(name):
            out[name] = t
    return layers, out


def exact(values):
    # float32 → Python float is exact, and json writes the shortest repr that reads back the same double
    return [float(v) for v in values]


def describe(t):
    a = t.contiguous().numpy().astype('<f4', copy=False).reshape(-1)
    wide = a.astype(np.float64)
    return {
        'shape': list(t.shape),
        'sum': float(wide.sum()),
        'sum_sq': float((wide * wide).sum()),
        'first16': exact(a[:16]),
        'last16': exact(a[-16:]),
        'sha256_f32le': hashlib.sha256(a.tobytes()).hexdigest(),
    }


def main():
    with open(FIXTURE, 'rb') as f:
        blob = f.read()
    raw = brotli.decompress(blob)
    stride, zipped = unshuffle(raw)
    state = torch.load(io.BytesIO(zipped), map_location='cpu')
    w, m = state['w'], state['m']
    flat = dequantize(w, m)
    layers, banked = rebank(flat)
    quantized = collections.OrderedDict()
    for name, kind in m.items():
        if kind.startswith('passthrough'):
            continue
        q = w[name + '.q']
        quantized[name] = {
            'kind': kind,
            'q_shape': list(q.shape),
            'q_min': int(q.min()),
            'q_max': int(q.max()),
            'scale': exact(w[name + '.scale'].float().reshape(-1).numpy()),
        }
    reference = {
        'source': 'scripts/reference/ptz_dequant.py (torch %s, brotli %s)' % (torch.__version__, brotli.__version__),
        'file': {'name': os.path.basename(FIXTURE), 'bytes': len(blob), 'sha256': hashlib.sha256(blob).hexdigest()},
        'decompressed_bytes': len(raw),
        'shuffle_stride': stride,
        'zip_bytes': len(zipped),
        'stored_tensors': len(w),
        'num_layers': layers,
        'categories': dict(collections.Counter(m.values())),
        'quant_meta': dict(m),
        'quantized': quantized,
        'tensors': collections.OrderedDict((k, describe(v)) for k, v in banked.items()),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        json.dump(reference, f, indent=1)
        f.write('\n')
    print('wrote %s: %d tensors, categories %s' % (OUT, len(banked), reference['categories']))


if __name__ == '__main__':
    main()
