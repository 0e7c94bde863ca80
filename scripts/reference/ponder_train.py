"""
Reference numbers for training PonderTTT's TTT layer with the base frozen (test/ponder-train.test.ts).

Written from the method's definition (shared/research/methods.md §2, the tiny-ttt fixture README and
deveworld/ponderTTT's train_baseline.py loss), not from Head Lens's TypeScript: a float64 PyTorch
forward of the TTT branch in their dual form, whose inner gradient G is torch.autograd's own
vector-Jacobian product of the per-head LayerNorm (create_graph=True, as jax.vjp is differentiable),
on a nanoGPT GPT-2 base (exact-erf GELU, tied head). It first checks itself against the tiny-ttt
fixture (out_update and the three losses), then writes:

  test/reference/ponder/base.safetensors   a seeded GPT-2 (vocab 256, 2 layers, width 32), nanoGPT names
  test/reference/ponder/batch.safetensors  input_ids / targets [2, 16] for --overfit-batch
  test/reference/ponder/train.json         loss and global gradient norm at step 0, the losses of 3 Adam
                                            steps (clip 1.0) and the loss after them, for the fixture's TTT layer

Loss: CE of the UPDATE path over each chunk's T − 1 next-token predictions + 0.1 · mean(mean init,
mean step_0, mean step_1). Only fast_norm.* and fast_layer.* are trained.

Run: /usr/bin/python3 scripts/reference/ponder_train.py
"""
import json
import math
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(REPO, '..', 'shared', 'fixtures', 'methods')
OUT = os.path.join(REPO, 'test', 'reference', 'ponder')
DT = torch.float64

LR, BETAS, EPS, CLIP, SSL_WEIGHT, STEPS = 3e-3, (0.9, 0.95), 1e-8, 1.0, 0.1, 3


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {'F32': np.float32, 'I64': np.int64, 'I32': np.int32}
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        out[k] = np.frombuffer(data[a:b], dtype=dtypes[v['dtype']]).reshape(v['shape']).copy()
    return out


def write_safetensors(path, tensors, metadata):
    names = sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k))
    header, blobs, off = {'__metadata__': metadata}, [], 0
    for k in names:
        a = np.ascontiguousarray(tensors[k])
        b = a.tobytes()
        header[k] = {'dtype': {np.dtype('float32'): 'F32', np.dtype('int64'): 'I64'}[a.dtype], 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    j = json.dumps(header).encode()
    j += b' ' * ((8 - len(j) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(j)) + j + b''.join(blobs))


# ---------------------------------------------------------------------------------------------
# The TTT branch (ttt_layer_nnx.py as methods.md §2.2 and the fixture README describe it)
# ---------------------------------------------------------------------------------------------

def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def causal_conv(x, kernel, bias):
    """nnx.Conv 'SAME' after a left pad of w − 1: out[t] = b + Σ_j k[j]·x[t + j − (⌊(w−1)/2⌋ + w − 1)]."""
    w = kernel.shape[0]
    offset = (w - 1) // 2 + w - 1
    B, T, F = x.shape
    xp = torch.cat([torch.zeros(B, offset, F, dtype=x.dtype), x], 1)
    out = bias.expand(B, T, F).clone()
    for j in range(w):
        out = out + xp[:, j:j + T] * kernel[j, 0]
    return out


def rope(x, M, theta):
    """Interleaved pairs rotated as complex numbers, positions t mod M: x (B, T, H, d)."""
    B, T, H, d = x.shape
    freqs = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=DT) / d))
    ang = torch.outer(torch.arange(T, dtype=DT) % M, freqs)  # (T, d/2)
    cos, sin = torch.cos(ang)[None, :, None], torch.sin(ang)[None, :, None]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).reshape(B, T, H, d)


def ttt_branch(P, h, cfg):
    C, H, d, M = cfg['hidden_dim'], cfg['num_heads'], cfg['head_dim'], cfg['mini_batch_size']
    B, T, _ = h.shape
    n = T // M
    x = layer_norm(h, P['fast_norm.scale'], P['fast_norm.bias'])
    xqk = x @ P['fast_layer.wq.kernel']
    xv = x @ P['fast_layer.wv.kernel']
    xq = rope(causal_conv(xqk, P['fast_layer.conv_q.kernel'], P['fast_layer.conv_q.bias']).reshape(B, T, H, d), M, cfg['rope_theta'])
    xk = rope(causal_conv(xqk, P['fast_layer.conv_k.kernel'], P['fast_layer.conv_k.bias']).reshape(B, T, H, d), M, cfg['rope_theta'])
    xv = xv.reshape(B, T, H, d)
    lr = torch.sigmoid(torch.stack([x @ P[f'fast_layer.learnable_ttt_lr_layers.{k}.kernel'][:, 0] + P[f'fast_layer.learnable_ttt_lr_layers.{k}.bias'][0] for k in range(H)], 1))  # (B, H, T)
    j = torch.arange(M, dtype=DT)
    token = torch.clamp(P['fast_layer.learnable_token_idx'] + 1.0 / (j + 1), min=0.0) * torch.exp(cfg['eta_decay_rate'] * (j - (M - 1)))
    eta = (cfg['ttt_base_lr'] * token) * lr.reshape(B, H, n, M) * (768.0 / C) / d  # (B, H, n, M)
    mb = lambda t: t.reshape(B, n, M, H, d).permute(0, 3, 1, 2, 4)  # (B, H, n, M, d)
    Q, K, V = mb(xq), mb(xk), mb(xv)
    scale, shift = P['fast_layer.ttt_norm.scale'][None], P['fast_layer.ttt_norm.bias'][None]  # (1, H, 1, d)
    norm = lambda z: layer_norm(z, scale, shift)
    W0, b0 = P['fast_layer.W1'][None], P['fast_layer.b1'][None]
    W, b = W0, b0
    tril = torch.tril(torch.ones(M, M, dtype=DT), diagonal=cfg['causal_k'])
    rows, init, step0, step1 = [], [], [], []
    for i in range(n):
        q, k, v, e = Q[:, :, i], K[:, :, i], V[:, :, i], eta[:, :, i]
        target = v - k
        Z = k @ W + b
        out = norm(Z)
        g_out = out - target
        G = torch.autograd.grad(out, Z, grad_outputs=g_out, create_graph=True)[0]
        step0.append((g_out[:, :, -1] ** 2).mean(-1))
        init.append(((norm(k @ W0 + b0) - target)[:, :, -1] ** 2).mean(-1))
        e_row = e[:, :, None, :]
        attn = torch.tril(q @ k.transpose(-1, -2), diagonal=cfg['causal_k'])
        b_bar = b - (tril * e_row) @ G
        z_bar = q @ W - (attn * e_row) @ G + b_bar
        rows.append(q + norm(z_bar))
        W = W - (e[..., None] * k).transpose(-1, -2) @ G
        b = b - (e[..., None] * G).sum(2, keepdim=True)
        step1.append(((norm(k[:, :, -1:] @ W + b) - target[:, :, -1:]) ** 2).mean((-2, -1)))
    z = torch.stack(rows, 2).reshape(B, H, T, d).permute(0, 2, 1, 3).reshape(B, T, H * d)
    z = layer_norm(z, P['fast_layer.post_norm.scale'], P['fast_layer.post_norm.bias'])
    gate = torch.nn.functional.gelu(x @ P['fast_layer.wg.kernel'], approximate='tanh')
    out = (gate * z) @ P['fast_layer.wo.kernel']
    stats = [torch.stack(s, -1) for s in (init, step0, step1)]  # (B, H, n)
    return h + out, stats


# ---------------------------------------------------------------------------------------------
# nanoGPT's GPT-2 (model.py at 3adf61e): the frozen base
# ---------------------------------------------------------------------------------------------

def gpt2_hidden(Wb, ids, c):
    B, T = ids.shape
    C, Hh = c['n_embd'], c['n_head']
    x = Wb['transformer.wte.weight'][ids] + Wb['transformer.wpe.weight'][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(c['n_layer']):
        p = lambda s: Wb[f'transformer.h.{l}.{s}']
        a = layer_norm(x, p('ln_1.weight'), p('ln_1.bias'))
        qkv = a @ p('attn.c_attn.weight').T + p('attn.c_attn.bias')
        q, k, v = [t.reshape(B, T, Hh, C // Hh).transpose(1, 2) for t in qkv.split(C, -1)]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(C // Hh)
        y = torch.softmax(s.masked_fill(~mask, float('-inf')), -1) @ v
        x = x + y.transpose(1, 2).reshape(B, T, C) @ p('attn.c_proj.weight').T + p('attn.c_proj.bias')
        m = layer_norm(x, p('ln_2.weight'), p('ln_2.bias')) @ p('mlp.c_fc.weight').T + p('mlp.c_fc.bias')
        x = x + torch.nn.functional.gelu(m) @ p('mlp.c_proj.weight').T + p('mlp.c_proj.bias')
    return layer_norm(x, Wb['transformer.ln_f.weight'], Wb['transformer.ln_f.bias'])


def make_base(seed):
    rng = np.random.default_rng(seed)
    c = {'family': 'gpt2', 'vocab_size': 256, 'block_size': 32, 'n_layer': 2, 'n_head': 2, 'n_embd': 32, 'bias': True, 'activation': 'gelu',
         'layer_norm_epsilon': 1e-5, 'scale_attn_weights': True, 'scale_attn_by_inverse_layer_idx': False, 'tie_word_embeddings': True, 'gate': False}
    C, t = c['n_embd'], {}
    nrm = lambda *s, std=0.02: (rng.standard_normal(s) * std).astype(np.float32)
    t['transformer.wte.weight'] = nrm(c['vocab_size'], C, std=0.3)
    t['transformer.wpe.weight'] = nrm(c['block_size'], C, std=0.1)
    for l in range(c['n_layer']):
        p = f'transformer.h.{l}.'
        for ln in ('ln_1', 'ln_2'):
            t[p + ln + '.weight'] = (1 + nrm(C, std=0.1)).astype(np.float32)
            t[p + ln + '.bias'] = nrm(C, std=0.1)
        for name, shape in (('attn.c_attn', (3 * C, C)), ('attn.c_proj', (C, C)), ('mlp.c_fc', (4 * C, C)), ('mlp.c_proj', (C, 4 * C))):
            t[p + name + '.weight'] = nrm(*shape, std=0.2)
            t[p + name + '.bias'] = nrm(shape[0], std=0.05)
    t['transformer.ln_f.weight'] = (1 + nrm(C, std=0.1)).astype(np.float32)
    t['transformer.ln_f.bias'] = nrm(C, std=0.1)
    return c, t


def main():
    os.makedirs(OUT, exist_ok=True)
    fx_json = json.load(open(os.path.join(FIX, 'tiny-ttt.json')))
    cfg = fx_json['config']
    P0 = {k: torch.tensor(v, dtype=DT) for k, v in read_safetensors(os.path.join(FIX, 'tiny-ttt.model.safetensors')).items()}
    ex = read_safetensors(os.path.join(FIX, 'tiny-ttt.expected.safetensors'))

    # self-check against the fixture: two chunks of 16 as a batch
    h = torch.tensor(ex['hidden_states'], dtype=DT).reshape(2, 16, 32)
    P = {k: v.clone().requires_grad_(True) for k, v in P0.items()}
    out, stats = ttt_branch(P, h, cfg)
    worst = float((out.reshape(1, 32, 32) - torch.tensor(ex['out_update'], dtype=DT)).abs().max())
    assert worst < 2e-5, f'out_update off by {worst}'
    for s, name in zip(stats, ('ttt_loss_init', 'ttt_loss_step_0', 'ttt_loss_step_1')):
        d = float((s.mean(1) - torch.tensor(ex[name], dtype=DT)).abs().max())
        assert d < 2e-5, f'{name} off by {d}'
    print(f'fixture check: out_update within {worst:.2e}')

    c, base = make_base(20251201)
    write_safetensors(os.path.join(OUT, 'base.safetensors'), base, {'format': 'headlens-model-1', 'config': json.dumps(c)})
    rng = np.random.default_rng(5)
    ids = rng.integers(0, c['vocab_size'], size=(2, 16)).astype(np.int64)
    targets = np.concatenate([ids[:, 1:], rng.integers(0, c['vocab_size'], size=(2, 1))], 1).astype(np.int64)
    write_safetensors(os.path.join(OUT, 'batch.safetensors'), {'input_ids': ids, 'targets': targets}, {'format': 'pt'})

    Wb = {k: torch.tensor(v, dtype=DT) for k, v in base.items()}
    ids_t = torch.tensor(ids)
    with torch.no_grad():
        hb = gpt2_hidden(Wb, ids_t, c)  # the frozen base: no gradient reaches it
    wte = Wb['transformer.wte.weight']

    def loss_of(P):
        out, stats = ttt_branch(P, hb, cfg)
        logits = out[:, :-1] @ wte.T
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, c['vocab_size']), ids_t[:, 1:].reshape(-1))
        ssl = sum(s.mean() for s in stats) / 3
        return ce + SSL_WEIGHT * ssl

    P = {k: v.clone().requires_grad_(True) for k, v in P0.items()}
    opt = torch.optim.AdamW(list(P.values()), lr=LR, betas=BETAS, eps=EPS, weight_decay=0.0)
    losses, norm0 = [], None
    for step in range(STEPS):
        opt.zero_grad()
        loss = loss_of(P)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(list(P.values()), CLIP))
        if step == 0:
            norm0 = norm
            grads0 = {k: float(v.grad.norm()) for k, v in P.items()}
        losses.append(float(loss))
        opt.step()
    final = float(loss_of(P).detach())
    ref = {
        'generator': 'scripts/reference/ponder_train.py', 'torch': torch.__version__, 'dtype': 'float64',
        'ttt': 'shared/fixtures/methods/tiny-ttt.model.safetensors', 'ttt_config': cfg,
        'lr': LR, 'betas': list(BETAS), 'eps': EPS, 'clip': CLIP, 'ssl_weight': SSL_WEIGHT, 'weight_decay': 0.0,
        'losses': losses, 'loss_after': final, 'grad_norm_step0': norm0, 'grad_norms_step0': grads0,
    }
    json.dump(ref, open(os.path.join(OUT, 'train.json'), 'w'), indent=1)
    print(json.dumps({'losses': losses, 'loss_after': final, 'grad_norm_step0': norm0}))


if __name__ == '__main__':
    main()
