#!/usr/bin/env python3
"""GPU memory of one aha GRPO step, from the formulas in docs/gpu.md (bf16 compute, f32 master).

Usage: scripts/gpu-memory.py [--prompt 256] [--new 1024] [--group 8]
Counts what aha's generic (CUDA) path holds today; an estimate, not a measurement.
"""
import argparse

# Qwen2.5 configs (config.json on the Hub): layers, hidden, intermediate, heads, kv heads,
# head dim, vocab, parameters.
MODELS = {
    "Qwen2.5-0.5B": dict(L=24, D=896, I=4864, H=14, K=2, E=64, V=151936, P=0.494e9),
    "Qwen2.5-1.5B": dict(L=28, D=1536, I=8960, H=12, K=2, E=128, V=151936, P=1.544e9),
    "Qwen2.5-7B": dict(L=28, D=3584, I=18944, H=28, K=4, E=128, V=152064, P=7.616e9),
}
GB = 1e9


def layer_bytes_per_token(m, t):
    """Bytes one decoder layer keeps for the backward, per token, in the generic bf16 path."""
    attention = 28 * m["H"] * t  # (H, T) scores: bf16, f32 cast, scaled, masked, shifted, exp, probs
    norms = 2 * 18 * m["D"]  # two RMSNorms: f32 copy, square, normalised, bf16, weighted
    qkv = 12 * (m["H"] + 2 * m["K"]) * m["E"]  # q/k/v and RoPE's halves, products, concat
    rest = 4 * m["H"] * m["E"] + 6 * m["D"] + 10 * m["I"]  # attention out, o/down/residuals, MLP
    return attention + norms + qkv + rest


def step(m, prompt, new, group):
    t = prompt + new
    p = m["P"]
    static = {
        "weights (f32 master)": 4 * p,
        "grads (f32)": 4 * p,
        "AdamW m + v (f32)": 8 * p,
        "bf16 weight copies": 2 * p,
        "reference model (f32, β > 0)": 4 * p,
    }
    kv = 2 * m["L"] * m["K"] * m["E"] * t * group * 2  # K and V, bf16, G rows
    per_seq = layer_bytes_per_token(m, t) * t * m["L"]
    logits = 14 * m["V"] * t  # bf16 logits, f32 copy, shifted, exp
    ckpt = 2 * m["D"] * t * m["L"] + layer_bytes_per_token(m, t) * t
    return static, kv, per_seq + logits, ckpt + logits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=1024)
    ap.add_argument("--group", type=int, default=8)
    a = ap.parse_args()
    print(f"T = {a.prompt} prompt + {a.new} new tokens, G = {a.group}; GB = 1e9 bytes\n")
    head = ("model", "static", "KV cache", "act/seq", "act/seq ckpt", "max mb 80GB", "max mb 141GB",
            "ckpt 80GB", "ckpt 141GB")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, m in MODELS.items():
        static, kv, act, ckpt = step(m, a.prompt, a.new, a.group)
        s = sum(static.values())
        fit = lambda cap, per: max(0, int((cap * GB - s - kv) // per))
        row = [name, f"{s / GB:.1f}", f"{kv / GB:.2f}", f"{act / GB:.1f}", f"{ckpt / GB:.1f}",
               fit(80, act), fit(141, act), fit(80, ckpt), fit(141, ckpt)]
        print("| " + " | ".join(str(x) for x in row) + " |")
    print("\nstatic = 22·P bytes: " + ", ".join(f"{k} {v // MODELS['Qwen2.5-1.5B']['P']:.0f}·P"
                                             for k, v in step(MODELS['Qwen2.5-1.5B'], 1, 1, 1)[0].items()))
    print("max mb = sequences per micro-batch that fit beside static + KV cache (0 = does not fit)")


if __name__ == "__main__":
    main()
