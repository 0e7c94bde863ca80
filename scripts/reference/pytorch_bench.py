"""The PyTorch reference of `npm run bench`: the authors' own model code, timed on this machine.

Forward of one window (no gradients, eval mode, float32) with seeded random weights at the bench's
full sizes, median of N runs after 2 warm-ups, for 1 and 2 intra-op threads:
  - a-gpt base and adaptive (REDDITARUN/a-gpt models/base_gpt.py, a_gpt.py), 256 tokens;
  - GPT-2 124M (karpathy/nanoGPT model.py), 1024 tokens.
The checkouts are read from AGPT_DIR / NANOGPT_DIR (default .bench-out/a-gpt, .bench-out/nanoGPT);
a model whose checkout is missing is skipped. Prints one JSON object:
  {"torch": version, "rows": {name: {"1": ms, "2": ms}}}.
Run with Debian's /usr/bin/python3 (python3-torch) and an optimised BLAS (libopenblas0-pthread): Debian's
torch calls whatever libblas.so.3 points to, and the reference BLAS is ~35x slower. Torch < 2.0 has no scaled_dot_product_attention, which
a-gpt calls: it is defined here with the same maths (unfused), as nanoGPT's own fallback path does.
"""
import json, os, statistics, sys, time

import torch
import torch.nn.functional as F

if not hasattr(F, "scaled_dot_product_attention"):  # torch < 2.0 (Debian's 1.13): the same maths, unfused
    def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
        scores = q @ k.transpose(-2, -1) / (q.size(-1) ** 0.5)
        if is_causal:
            T, S = q.size(-2), k.size(-2)
            scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool).triu(1), float("-inf"))
        if attn_mask is not None:
            scores = scores + attn_mask
        return torch.softmax(scores, dim=-1) @ v
    F.scaled_dot_product_attention = _sdpa

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGPT = os.environ.get("AGPT_DIR", os.path.join(ROOT, ".bench-out", "a-gpt"))
NANO = os.environ.get("NANOGPT_DIR", os.path.join(ROOT, ".bench-out", "nanoGPT"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def median_ms(model, ids, runs):
    with torch.no_grad():
        for _ in range(2):
            model(ids)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(ids)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def agpt_models():
    if not os.path.isdir(os.path.join(AGPT, "models")):
        return {}
    sys.path.insert(0, AGPT)
    from models.base_gpt import GPT_Base, GPT_Base_Config
    from models.a_gpt import GPT_Custom, GPT_Custom_Config, HyperConfig

    torch.manual_seed(1)
    base = GPT_Base(GPT_Base_Config(block_size=256, vocab_size=50257, n_layer=4, n_head=4, n_embd=256))
    adaptive = GPT_Custom(GPT_Custom_Config(block_size=256, vocab_size=50257, n_layer=4, n_head=4, n_embd=256), HyperConfig())
    ids = torch.randint(0, 50257, (1, 256))
    return {"base": (base, ids), "adaptive": (adaptive, ids)}


def gpt2_model():
    if not os.path.isfile(os.path.join(NANO, "model.py")):
        return {}
    sys.path.insert(0, NANO)
    from model import GPT, GPTConfig

    torch.manual_seed(1)
    m = GPT(GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768, dropout=0.0, bias=True))
    ids = torch.randint(0, 50257, (1, 1024))

    class Full(torch.nn.Module):  # nanoGPT's inference path returns only the last position: time the full logits
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, idx):
            return self.m(idx, targets=idx)

    return {"gpt2": (Full(m), ids)}


def blas_library():
    """The BLAS actually loaded (Debian's torch calls whatever libblas.so.3 points to)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower()}
    return ", ".join(sorted(os.path.basename(l) for l in libs)) or "unknown"


def run(threads):
    """One thread count in this process: torch's and the BLAS's pools both sized to it."""
    torch.set_num_threads(threads)
    rows = {}
    for name, (model, ids) in {**agpt_models(), **gpt2_model()}.items():
        model.eval()
        rows[name] = round(median_ms(model, ids, RUNS), 1)
    return rows


def main():
    if os.environ.get("BENCH_THREADS"):
        print(json.dumps({"rows": run(int(os.environ["BENCH_THREADS"])), "blas": blas_library()}))
        return
    import subprocess
    rows, blas = {}, ""
    for threads in (1, 2):
        env = {**os.environ, "BENCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
        out = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env, capture_output=True, text=True, check=True).stdout
        part = json.loads(out.strip().splitlines()[-1])
        blas = part["blas"]
        for name, ms in part["rows"].items():
            rows.setdefault(name, {})[str(threads)] = ms
    print(json.dumps({"torch": torch.__version__, "blas": blas, "rows": rows}))


if __name__ == "__main__":
    main()
