"""Reference NLL under head ablations, computed by the a-gpt authors' own model code with the change
made by forward hooks (no edit to their code), on the shared fixture weights and batch.

Modes, per (layer, head):
  zero         forward pre-hook on attn.c_proj: the head's slice of the merged attention output := 0;
  mean         the same slice := its mean over the window's positions;
  adaptive-off forward hook on attn.hyper_v[head]: returns (A, zeros) so the dynamic update v·A·B is 0.
Writes test/reference/interventions/ablate.json: per case the spec, base_nll and nll
(nll[b][t] = −log p(ids[b][t+1]) for t < T−1).
  AGPT_DIR=.bench-out/a-gpt /usr/bin/python3 scripts/reference/ablate.py
"""
import json, os, sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sliding_ppl import FIX, ROOT, model, read_safetensors  # noqa: E402  (also shims SDPA for torch < 2)


def parse(spec):
    out = []
    for part in spec.split(","):
        where, mode = part.split(":")
        layer, head = where.split(".")
        out.append((int(layer), int(head), mode))
    return out


def nll_rows(m, ids):
    with torch.no_grad():
        logits, _ = m(ids)
    logp = torch.log_softmax(logits.double(), dim=-1)
    return [[-logp[b, t, ids[b, t + 1]].item() for t in range(ids.shape[1] - 1)] for b in range(ids.shape[0])]


def with_hooks(m, spec):
    hooks = []
    hs = m.config.n_embd // m.config.n_head
    for layer, head, mode in parse(spec):
        attn = m.transformer.h[layer].attn
        if mode in ("zero", "mean"):
            def pre(_mod, args, head=head, mode=mode):
                y = args[0].clone()
                part = y[..., head * hs:(head + 1) * hs]
                y[..., head * hs:(head + 1) * hs] = 0 if mode == "zero" else part.mean(dim=1, keepdim=True)
                return (y,)
            hooks.append(attn.c_proj.register_forward_pre_hook(pre))
        elif mode == "adaptive-off":
            hooks.append(attn.hyper_v[head].register_forward_hook(lambda _m, _i, out: (out[0], torch.zeros_like(out[1]))))
    return hooks


def main():
    cases = {"base": ["0.1:zero", "1.2:mean", "0.0:zero,1.3:mean"], "adaptive": ["0.1:adaptive-off", "1.0:zero,0.2:adaptive-off", "1.1:mean", "0.3:adaptive-off,1.3:adaptive-off"]}
    out = []
    for family, specs in cases.items():
        m, _ = model(family)
        ex = read_ids(os.path.join(FIX, f"tiny-{family}.expected.safetensors"))
        base = nll_rows(m, ex)
        for spec in specs:
            hooks = with_hooks(m, spec)
            try:
                out.append({"family": family, "spec": spec, "ids": ex.tolist(), "base_nll": base, "nll": nll_rows(m, ex)})
            finally:
                for h in hooks:
                    h.remove()
    with open(os.path.join(ROOT, "test", "reference", "interventions", "ablate.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": out}, f, indent=1)


def read_ids(path):
    """input_ids (I64) of an expected.safetensors file."""
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header["input_ids"]
    a, b = meta["data_offsets"]
    return torch.frombuffer(bytearray(data[a:b]), dtype=torch.int64).reshape(meta["shape"])


if __name__ == "__main__":
    main()
