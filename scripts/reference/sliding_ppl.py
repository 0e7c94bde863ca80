"""Reference per-token NLL and perplexity of the sliding-window rule, computed by the a-gpt authors'
own model code (REDDITARUN/a-gpt models/base_gpt.py, a_gpt.py) on the shared fixture weights.

The rule is Hugging Face's "perplexity of fixed-length models": windows start at 0, stride, 2·stride,
… each at most `context` long; a window scores only the tokens past the previous window's end
(target_ids[:, :-trg_len] = -100 and the model shifts labels inside); stop at the window that
reaches the end. Token i is then scored with the context ids[window start : i]. With stride equal to
the context a window's first token is not scored by this rule (Head Lens scores it from the window
before: those cases are computed separately below, with that rule written out).

Writes test/reference/eval/sliding.json: for each case (model, context, stride) the ids, the NLL of
every token (null where unscored) and the perplexity over the scored tokens.
  AGPT_DIR=.bench-out/a-gpt /usr/bin/python3 scripts/reference/sliding_ppl.py
"""
import json, math, os, struct, sys

import torch
import torch.nn.functional as F

if not hasattr(F, "scaled_dot_product_attention"):  # torch < 2.0: the same maths, unfused
    def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
        s = q @ k.transpose(-2, -1) / (q.size(-1) ** 0.5)
        if is_causal:
            s = s.masked_fill(torch.ones(q.size(-2), k.size(-2), dtype=torch.bool).triu(1), float("-inf"))
        return torch.softmax(s, dim=-1) @ v
    F.scaled_dot_product_attention = _sdpa

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGPT = os.environ.get("AGPT_DIR", os.path.join(ROOT, ".bench-out", "a-gpt"))
FIX = os.path.join(ROOT, "..", "shared", "fixtures", "agpt")
sys.path.insert(0, AGPT)
from models.base_gpt import GPT_Base, GPT_Base_Config  # noqa: E402
from models.a_gpt import GPT_Custom, GPT_Custom_Config, HyperConfig  # noqa: E402


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
        assert meta["dtype"] == "F32"
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(meta["shape"])
    return out


def model(family):
    cfg = json.load(open(os.path.join(FIX, f"tiny-{family}.json")))
    c = cfg["config"]
    if family == "base":
        m = GPT_Base(GPT_Base_Config(**c))
    else:
        m = GPT_Custom(GPT_Custom_Config(**c), HyperConfig(**cfg["hyper"]))
    m.load_state_dict(read_safetensors(os.path.join(FIX, f"tiny-{family}.model.safetensors")))
    return m.eval(), c


def hf_sliding(m, ids, context, stride):
    """Hugging Face's loop, per token: nll[i] of the window that scores token i."""
    n = len(ids)
    nll = [None] * n
    prev_end = 0
    for begin in range(0, n, stride):
        end = min(begin + context, n)
        x = torch.tensor([ids[begin:end]])
        with torch.no_grad():
            logits, _ = m(x)
        logp = torch.log_softmax(logits[0].double(), dim=-1)
        for i in range(max(prev_end, begin + 1), end):  # labels shifted: token i read at position i-1
            nll[i] = -logp[i - 1 - begin, ids[i]].item()
        prev_end = end
        if end == n:
            break
    return nll


def disjoint(m, ids, context):
    """stride = context as Head Lens scores it: a window's first token from the previous window's last position."""
    n = len(ids)
    nll = [None] * n
    for begin in range(0, n, context):
        end = min(begin + context, n)
        with torch.no_grad():
            logits, _ = m(torch.tensor([ids[begin:end]]))
        logp = torch.log_softmax(logits[0].double(), dim=-1)
        for p in range(begin, end):
            if p + 1 < n:
                nll[p + 1] = -logp[p - begin, ids[p + 1]].item()
    return nll


def main():
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(0, 512, (90,), generator=g).tolist()
    cases = []
    for family in ("base", "adaptive"):
        m, c = model(family)
        for context, stride in ((32, 16), (32, 8), (20, 7)):
            nll = hf_sliding(m, ids, context, stride)
            s = [v for v in nll if v is not None]
            cases.append({"family": family, "context": context, "stride": stride, "rule": "huggingface", "nll": nll, "ppl": math.exp(sum(s) / len(s)), "tokens": len(s)})
        nll = disjoint(m, ids, 32)
        s = [v for v in nll if v is not None]
        cases.append({"family": family, "context": 32, "stride": 32, "rule": "disjoint", "nll": nll, "ppl": math.exp(sum(s) / len(s)), "tokens": len(s)})
    out = {"ids": ids, "torch": torch.__version__, "cases": cases}
    with open(os.path.join(ROOT, "test", "reference", "eval", "sliding.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
