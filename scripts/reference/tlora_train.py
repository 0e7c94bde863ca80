"""Reference numbers for Temporal LoRA training (the tlora family's three phases), written from the
method's definition in stability-first-ai 02-temporal-lora-gpt2/temporal_lora.py (c85243c):

  phase k (train_adapter): adapter k and the Time Mixer train on next-token cross-entropy of the
      mixed model (pad/eos targets ignored), every other adapter and the GPT-2 base frozen; from the
      second adapter on, + 0.5·T²·KL(p_teacher ‖ p_student) with T = 2 and p = softmax(mean_s(w)/T) of
      the mixer weights w on a batch of the first domain (teacher = the mixer before the phase);
      torch.optim.Adam, constant lr, no clipping;
  router (calibrate_mixer): only the Time Mixer trains, on −log of the tail-weighted aggregate
      p̄ = Σ_s w_s softmax(classifier(embed(x_s))), w_s = m_s·exp((s − (L−1))/(0.35·S)) / (Σ w + 1e-8),
      clamped to [1e-8, 1], against each row's domain label.

The model is the tiny-tlora fixture (nanoGPT blocks, erf GELU, ln_f skipped, tied head), computed
here in float64 with our own forward. The reset of the router before phase 3 is random and is left
out (the test starts phase 3 from the phase-2 mixer, as this script does). Batches are seeded.
Writes test/reference/tlora/train.json (per phase: losses before each of 3 steps, the loss after,
step-0 gradient norms of every trainable tensor) and test/reference/tlora/final.safetensors (every
adapter and mixer tensor after the three phases).
  /usr/bin/python3 scripts/reference/tlora_train.py
"""
import json, math, os, struct

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "..", "shared", "fixtures", "methods")
OUT = os.path.join(ROOT, "test", "reference", "tlora")
IGNORE = 255  # stands in for GPT-2's eos, their pad and ignore_index, in the 256-token fixture vocabulary
LR_ADAPTER, LR_ROUTER, STEPS, T_DISTILL, TAU = 1e-2, 2e-2, 3, 2.0, 0.35


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        assert meta["dtype"] == "F32", name
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(meta["shape"]).double()
    return out


def read_safetensors_any(path):
    """F32 and I64 tensors (the expected file holds the int64 input ids)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": torch.float32, "I64": torch.int64}
    return {k: torch.frombuffer(bytearray(data[v["data_offsets"][0]:v["data_offsets"][1]]), dtype=kinds[v["dtype"]]).reshape(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        b = tensors[name].detach().float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


class Model:
    """The fixture's weights as leaf tensors; the forward of TemporalLoRAModel with the mixer."""

    def __init__(self, weights, cfg):
        self.w = {k: v.clone().requires_grad_(not k.startswith("base.")) for k, v in weights.items()}
        self.names = cfg["adapter_names"]
        self.scale = cfg["lora_alpha"] / cfg["lora_rank"]
        self.n_layer, self.n_head = cfg["n_layer"], cfg["n_head"]

    def mixer(self, ids, w=None):
        w = w or self.w
        e = w["time_mixer.domain_embed.weight"][ids]
        h = torch.relu(e @ w["time_mixer.domain_classifier.0.weight"].T + w["time_mixer.domain_classifier.0.bias"])
        return torch.softmax(h @ w["time_mixer.domain_classifier.2.weight"].T + w["time_mixer.domain_classifier.2.bias"], dim=-1)

    def block(self, x, l):
        p = lambda n: self.w[f"base.transformer.h.{l}.{n}"]
        B, T, C = x.shape
        H = self.n_head
        n = F.layer_norm(x, (C,), p("ln_1.weight"), p("ln_1.bias"), 1e-5)
        q, k, v = (n @ p("attn.c_attn.weight").T + p("attn.c_attn.bias")).split(C, dim=2)
        heads = lambda t: t.view(B, T, H, C // H).transpose(1, 2)
        q, k, v = heads(q), heads(k), heads(v)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(torch.tril(torch.ones(T, T, dtype=torch.bool)).logical_not(), float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p("attn.c_proj.weight").T + p("attn.c_proj.bias")
        m = F.layer_norm(x, (C,), p("ln_2.weight"), p("ln_2.bias"), 1e-5) @ p("mlp.c_fc.weight").T + p("mlp.c_fc.bias")
        return x + F.gelu(m) @ p("mlp.c_proj.weight").T + p("mlp.c_proj.bias")

    def logits(self, ids):
        wte = self.w["base.transformer.wte.weight"]
        x = wte[ids] + self.w["base.transformer.wpe.weight"][: ids.shape[1]]
        mix = self.mixer(ids)
        for l in range(self.n_layer):
            d = 0
            for k, name in enumerate(self.names):
                delta = self.scale * ((x @ self.w[f"adapters.{name}.lora_A"].T) @ self.w[f"adapters.{name}.lora_B"].T)
                d = d + mix[:, :, k : k + 1] * delta
            x = self.block(x + d, l)
        return x @ wte.T  # no ln_f


def lm_loss(m, seq):
    logits = m.logits(seq[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), seq[:, 1:].reshape(-1), ignore_index=IGNORE)


def distill_loss(m, teacher, prev):
    with torch.no_grad():
        p_t = F.softmax(m.mixer(prev, teacher).mean(dim=1) / T_DISTILL, dim=-1)
    log_p_s = F.log_softmax(m.mixer(prev).mean(dim=1) / T_DISTILL, dim=-1)
    return T_DISTILL * T_DISTILL * F.kl_div(log_p_s, p_t, reduction="batchmean")


def router_loss(m, ids, mask, labels):
    B, S = ids.shape
    probs = m.mixer(ids)
    pos = torch.arange(S, dtype=torch.float64).unsqueeze(0).expand(B, S)
    last = (mask.sum(dim=1).clamp(min=1.0) - 1.0).unsqueeze(1)
    w = torch.exp((pos - last) / (TAU * S)) * mask
    w = w / (w.sum(dim=1, keepdim=True) + 1e-8)
    agg = (probs * w.unsqueeze(-1)).sum(dim=1).clamp(1e-8, 1.0)
    acc = (agg.argmax(dim=1) == labels).double().mean().item()
    return F.nll_loss(torch.log(agg), labels), acc


def run_phase(m, trainable, lr, loss_fn):
    params = [m.w[n] for n in trainable]
    opt = torch.optim.Adam(params, lr=lr)  # their optimizer: betas (0.9, 0.999), eps 1e-8, no decay
    losses, parts, norms = [], [], {}
    for step in range(STEPS):
        opt.zero_grad()
        loss, extra = loss_fn()
        loss.backward()
        if step == 0:
            norms = {n: m.w[n].grad.norm().item() for n in trainable}
        losses.append(loss.item())
        parts.append(extra)
        opt.step()
    with torch.no_grad():
        after, _ = loss_fn()
    return {"trainable": trainable, "lr": lr, "losses": losses, "parts": parts, "loss_after": after.item(), "grad_norms_step0": norms}


def main():
    cfg = json.load(open(os.path.join(FIX, "tiny-tlora.json")))["config"]
    m = Model(read_safetensors(os.path.join(FIX, "tiny-tlora.model.safetensors")), cfg)
    ex = read_safetensors_any(os.path.join(FIX, "tiny-tlora.expected.safetensors"))
    with torch.no_grad():
        err = (m.logits(ex["input_ids"].long()) - ex["logits_mixed"].double()).abs().max().item()
    assert err < 1e-4, f"this forward differs from the fixture's logits_mixed by {err}"
    rng = np.random.default_rng(7)
    seq = lambda b, t: torch.from_numpy(rng.integers(0, IGNORE, size=(b, t)))
    batch_a, batch_b, prev = seq(2, 17), seq(2, 17), seq(2, 16)
    batch_a[0, 12:] = IGNORE  # padding targets: ignored
    batch_b[1, 9:] = IGNORE
    router_ids = seq(4, 16)
    router_mask = torch.ones(4, 16, dtype=torch.float64)
    router_mask[2, 11:] = 0
    router_mask[3, 7:] = 0
    labels = torch.tensor([0, 1, 1, 0])
    mixer = [n for n in m.w if n.startswith("time_mixer.domain_")]
    adapter = lambda name: [f"adapters.{name}.lora_A", f"adapters.{name}.lora_B"]
    phases = []
    phases.append(run_phase(m, adapter("shakespeare") + mixer, LR_ADAPTER, lambda: (lm_loss(m, batch_a), {})))
    teacher = {k: v.detach().clone() for k, v in m.w.items()}

    def phase2():
        ce, kl = lm_loss(m, batch_b), distill_loss(m, teacher, prev)
        return ce + 0.5 * kl, {"ce": ce.item(), "kl": kl.item()}

    phases.append(run_phase(m, adapter("python") + mixer, LR_ADAPTER, phase2))

    def phase3():
        loss, acc = router_loss(m, router_ids, router_mask, labels)
        return loss, {"acc": acc}

    phases.append(run_phase(m, mixer, LR_ROUTER, phase3))
    os.makedirs(OUT, exist_ok=True)
    batches = {"adapter_a": batch_a.tolist(), "adapter_b": batch_b.tolist(), "prev": prev.tolist(), "router_ids": router_ids.tolist(), "router_mask": router_mask.tolist(), "labels": labels.tolist()}
    json.dump({"ignore_id": IGNORE, "steps": STEPS, "distill_T": T_DISTILL, "tau": TAU, "batches": batches, "phases": phases, "torch": torch.__version__}, open(os.path.join(OUT, "train.json"), "w"), indent=1)
    write_safetensors(os.path.join(OUT, "final.safetensors"), {k: v for k, v in m.w.items() if not k.startswith("base.")})
    for p in phases:
        print(p["losses"], p["loss_after"])


if __name__ == "__main__":
    main()
