#!/usr/bin/python3
"""Reference files for test/gpt2.test.ts, made from the shared fixture tiny-hf (shared/fixtures/gpt2).

1. test/reference/gpt2/pytorch_model.bin: the tiny-hf weights as transformers 4.0–4.4's
   `save_pretrained` wrote a GPT2LMHeadModel with torch.save (zip format): `transformer.` keys in
   state_dict order (a module's parameters, then its buffers, then its children), the causal-mask
   buffers `attn.bias` (uint8 [1, 1, P, P], lower-triangular) and `attn.masked_bias` (float32 0-dim,
   -1e4) that those versions registered, and `lm_head.weight` sharing wte's storage (tied).
   Checked by reloading it with torch.load.

2. test/reference/gpt2/flags.safetensors: logits and attention probabilities of tiny-hf on the
   fixture batch under the two GPT-2 config flags the fixtures do not cover, from a float64 NumPy
   forward written from transformers' GPT2Attention (eager path): scores q·kᵀ, divided by √hd when
   `scale_attn_weights`, and by (layer_idx + 1) when `scale_attn_by_inverse_layer_idx`; causal mask;
   softmax; Conv1D y = x·W + b; gelu_new; LayerNorm eps 1e-5. Names: `<variant>.logits`,
   `<variant>.attn.<l>` for variant `noscale` (scale_attn_weights false) and `invlayer`
   (scale_attn_by_inverse_layer_idx true). The same forward with the default flags is first checked
   against the fixture's own expected logits and attention.

Run: /usr/bin/python3 scripts/reference/gpt2_bin.py  (needs torch and numpy)
"""
import collections
import json
import math
import os
import struct

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, '..', 'shared', 'fixtures', 'gpt2')
OUT = os.path.join(REPO, 'test', 'reference', 'gpt2')

DTYPES = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64, 'I32': np.int32, 'U8': np.uint8, 'BOOL': np.bool_}


def read_safetensors(path):
    """The format: u64 LE header length, JSON header {name: {dtype, shape, data_offsets}}, data."""
    with open(path, 'rb') as f:
        buf = f.read()
    (n,) = struct.unpack('<Q', buf[:8])
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = collections.OrderedDict()
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        out[name] = np.frombuffer(data[b:end], dtype=DTYPES[e['dtype']]).reshape(e['shape']).copy()
    return out


def write_safetensors(path, tensors):
    """float32 tensors, ordered by name (all one element size), header padded with spaces to 8."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype='<f4')
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [offset, offset + a.nbytes]}
        chunks.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(chunks))


def save_bin(w, cfg):
    P, L = cfg['n_positions'], cfg['n_layer']
    sd = collections.OrderedDict()
    wte = torch.from_numpy(w['transformer.wte.weight'])
    sd['transformer.wte.weight'] = wte
    sd['transformer.wpe.weight'] = torch.from_numpy(w['transformer.wpe.weight'])
    mask = torch.tril(torch.ones((P, P), dtype=torch.uint8)).view(1, 1, P, P)
    for i in range(L):
        b = f'transformer.h.{i}.'
        for k in ['ln_1.weight', 'ln_1.bias']:
            sd[b + k] = torch.from_numpy(w[b + k])
        sd[b + 'attn.bias'] = mask.clone()
        sd[b + 'attn.masked_bias'] = torch.tensor(-1e4)
        for k in ['attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight', 'attn.c_proj.bias',
                  'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias']:
            sd[b + k] = torch.from_numpy(w[b + k])
    sd['transformer.ln_f.weight'] = torch.from_numpy(w['transformer.ln_f.weight'])
    sd['transformer.ln_f.bias'] = torch.from_numpy(w['transformer.ln_f.bias'])
    sd['lm_head.weight'] = wte  # tied: the same storage, as the module's state_dict has it
    path = os.path.join(OUT, 'pytorch_model.bin')
    torch.save(sd, path)
    back = torch.load(path)
    assert back['lm_head.weight'].data_ptr() == back['transformer.wte.weight'].data_ptr(), 'lm_head not tied in the file'
    assert back['transformer.h.0.attn.bias'].dtype == torch.uint8
    for k, v in sd.items():
        assert torch.equal(back[k], v), k
    print('wrote', path, os.path.getsize(path), 'bytes,', len(sd), 'entries')


def layer_norm(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(w, cfg, ids, scale_attn_weights=True, inverse_layer_idx=False):
    """transformers' GPT2LMHeadModel forward (eager attention), float64, tied head."""
    W = {k: v.astype(np.float64) for k, v in w.items()}
    C, H = cfg['n_embd'], cfg['n_head']
    hd = C // H
    B, T = ids.shape
    h = W['transformer.wte.weight'][ids] + W['transformer.wpe.weight'][np.arange(T)]
    causal = np.tril(np.ones((T, T), dtype=bool))
    attns = []
    for i in range(cfg['n_layer']):
        p = lambda k: W[f'transformer.h.{i}.{k}']
        x = layer_norm(h, p('ln_1.weight'), p('ln_1.bias'))
        qkv = x @ p('attn.c_attn.weight') + p('attn.c_attn.bias')
        q, k, v = (qkv[..., j * C:(j + 1) * C].reshape(B, T, H, hd).transpose(0, 2, 1, 3) for j in range(3))
        s = q @ k.transpose(0, 1, 3, 2)
        if scale_attn_weights:
            s = s / math.sqrt(hd)
        if inverse_layer_idx:
            s = s / float(i + 1)
        s = np.where(causal, s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = s / s.sum(-1, keepdims=True)
        attns.append(a)
        y = (a @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        h = h + y @ p('attn.c_proj.weight') + p('attn.c_proj.bias')
        x = layer_norm(h, p('ln_2.weight'), p('ln_2.bias'))
        h = h + gelu_new(x @ p('mlp.c_fc.weight') + p('mlp.c_fc.bias')) @ p('mlp.c_proj.weight') + p('mlp.c_proj.bias')
    h = layer_norm(h, W['transformer.ln_f.weight'], W['transformer.ln_f.bias'])
    return h @ W['transformer.wte.weight'].T, attns


def main():
    os.makedirs(OUT, exist_ok=True)
    w = read_safetensors(os.path.join(FIXTURES, 'tiny-hf', 'model.safetensors'))
    with open(os.path.join(FIXTURES, 'tiny-hf', 'config.json')) as f:
        cfg = json.load(f)
    save_bin(w, cfg)

    ex = read_safetensors(os.path.join(FIXTURES, 'tiny-hf.expected.safetensors'))
    ids = ex['input_ids'].astype(np.int64)
    logits, attns = forward(w, cfg, ids)
    worst = max(np.abs(logits - ex['logits']).max(), *(np.abs(a - ex[f'attn.{l}']).max() for l, a in enumerate(attns)))
    print('default flags vs the fixture: max |diff|', worst)
    assert worst < 1e-4, 'the NumPy forward does not reproduce the fixture'

    out = {}
    for name, kw in [('noscale', {'scale_attn_weights': False}), ('invlayer', {'inverse_layer_idx': True})]:
        lg, at = forward(w, cfg, ids, **kw)
        out[f'{name}.logits'] = lg
        for l, a in enumerate(at):
            out[f'{name}.attn.{l}'] = a
        print(name, 'logits differ from the default by', np.abs(lg - logits).max())
    path = os.path.join(OUT, 'flags.safetensors')
    write_safetensors(path, out)
    print('wrote', path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
    main()
