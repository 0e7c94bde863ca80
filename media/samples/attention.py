"""A tiny attention layer, the kind of code Head Lens is meant to be pointed at."""
import math


def softmax(xs):
    m = max(xs)
    exps = [math.exp(x - m) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def attend(query, keys, values):
    """Scaled dot-product attention for one query over a list of keys and values."""
    scale = 1.0 / math.sqrt(len(query))
    scores = [scale * sum(q * k for q, k in zip(query, key)) for key in keys]
    weights = softmax(scores)
    out = [0.0] * len(values[0])
    for w, value in zip(weights, values):
        for i, v in enumerate(value):
            out[i] += w * v
    return out, weights


if __name__ == "__main__":
    keys = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    values = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    out, weights = attend([1.0, 0.5], keys, values)
    print("weights:", [round(w, 3) for w in weights])
    print("output:", [round(o, 3) for o in out])
