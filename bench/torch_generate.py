"""PyTorch eager reference for `aha bench`'s generation rows.

A Qwen2-shaped decoder (RMSNorm, RoPE, GQA, SwiGLU, tied embeddings) written plainly in PyTorch,
decoding with a preallocated KV cache and multinomial sampling at temperature 1 (no EOS), the way
a careful eager implementation would. Prints tokens/s for the same cases `aha bench` runs:

  decode   16 prompts x 32 tokens, 128 new tokens each
  group    8 prompts x 256 tokens, G=16 completions each, 64 new tokens (prefill once, then the
           KV cache repeated G times)

Usage: /work/refpy/bin/python bench/torch_generate.py [--threads 2] [--repeats 3]
           [--rows generate,group-shared,group-unshared] [--json]

tokens/s is the median over repeats (as `aha bench` reports), with CPU seconds per generation.
"""

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

D, LAYERS, H, K, I, V = 256, 4, 8, 2, 688, 1024
E = D // H


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)

        def w(*shape):
            return torch.nn.Parameter(torch.randn(*shape, generator=g) / math.sqrt(shape[-1]))

        self.embed = torch.nn.Parameter(torch.randn(V, D, generator=g))
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            m = torch.nn.Module()
            m.q, m.k, m.v, m.o = w(H * E, D), w(K * E, D), w(K * E, D), w(D, H * E)
            m.qb, m.kb, m.vb = (torch.nn.Parameter(torch.zeros(n)) for n in (H * E, K * E, K * E))
            m.gate, m.up, m.down = w(I, D), w(I, D), w(D, I)
            m.n1, m.n2 = torch.nn.Parameter(torch.ones(D)), torch.nn.Parameter(torch.ones(D))
            self.layers.append(m)
        self.norm = torch.nn.Parameter(torch.ones(D))
        inv = 1.0 / (10000.0 ** (torch.arange(0, E, 2).float() / E))
        ang = torch.arange(4096).float()[:, None] * inv[None, :]
        self.cos, self.sin = ang.cos(), ang.sin()

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    def rope(self, x, pos):  # x (N, heads, S, E), pos (N, S)
        c, s = self.cos[pos][:, None], self.sin[pos][:, None]
        x1, x2 = x[..., : E // 2], x[..., E // 2 :]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)

    def forward(self, ids, pos, cache, start, mask):
        """ids/pos (N, S); cache: per layer (k, v) of (N, K, C, E); mask (N, 1, S, start+S) bool."""
        n, s = ids.shape
        x = self.embed[ids]
        for layer, (kc, vc) in zip(self.layers, cache):
            h = self.rms(x, layer.n1)
            q = F.linear(h, layer.q, layer.qb).view(n, s, H, E).transpose(1, 2)
            k = F.linear(h, layer.k, layer.kb).view(n, s, K, E).transpose(1, 2)
            v = F.linear(h, layer.v, layer.vb).view(n, s, K, E).transpose(1, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            kc[:, :, start : start + s] = k
            vc[:, :, start : start + s] = v
            kk = kc[:, :, : start + s].repeat_interleave(H // K, 1)
            vv = vc[:, :, : start + s].repeat_interleave(H // K, 1)
            a = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)
            x = x + F.linear(a.transpose(1, 2).reshape(n, s, D), layer.o)
            h = self.rms(x, layer.n2)
            x = x + F.linear(F.silu(F.linear(h, layer.gate)) * F.linear(h, layer.up), layer.down)
        return F.linear(self.rms(x[:, -1], self.norm), self.embed)


def new_cache(n, cap):
    return [(torch.zeros(n, K, cap, E), torch.zeros(n, K, cap, E)) for _ in range(LAYERS)]


@torch.inference_mode()
def generate(model, prompts, g, new_tokens, share_prefix):
    """prompts (B, P). Returns the number of tokens generated."""
    b, p = prompts.shape
    cap = p + new_tokens
    if not share_prefix:
        prompts, g = prompts.repeat_interleave(g, 0), 1
        b = prompts.shape[0]
    pos = torch.arange(p).expand(b, p)
    cache = new_cache(b, cap)
    causal = torch.ones(p, p, dtype=torch.bool).tril()[None, None]
    logits = model(prompts, pos, cache, 0, causal)
    if g > 1:
        cache = [(k.repeat_interleave(g, 0), v.repeat_interleave(g, 0)) for k, v in cache]
        logits = logits.repeat_interleave(g, 0)
    n = b * g
    tok = torch.multinomial(torch.softmax(logits, -1), 1)
    for t in range(1, new_tokens):
        start = p + t - 1
        mask = torch.ones(n, 1, 1, start + 1, dtype=torch.bool)
        logits = model(tok, torch.full((n, 1), start), cache, start, mask)
        tok = torch.multinomial(torch.softmax(logits, -1), 1)
    return n * new_tokens


ROWS = {
    # row: (label, prompts, prompt tokens, G, new tokens, share the prompt's prefill)
    "generate": ("decode 16x32 +128", 16, 32, 1, 128, True),
    "group-shared": ("group 8x256 G=16 +64 shared", 8, 256, 16, 64, True),
    "group-unshared": ("group 8x256 G=16 +64 unshared", 8, 256, 16, 64, False),
}


def bench(row, model, repeats, as_json):
    label, b, p, g, new_tokens, share_prefix = ROWS[row]
    prompts = torch.randint(0, V, (b, p), generator=torch.Generator().manual_seed(1))
    generate(model, prompts, g, min(new_tokens, 4), share_prefix)  # warm up
    runs = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        n = generate(model, prompts, g, new_tokens, share_prefix)
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    secs = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    if as_json:
        print(json.dumps({"row": row, "peer": "torch", "seconds": secs, "tokens_per_s": n / secs,
                          "best_tokens_per_s": n / min(r[0] for r in runs), "cpu_s": cpu}), flush=True)
    else:
        print(f"{label:<32} {n / secs:>10.0f} tok/s (median of {repeats}), cpu {cpu:.2f} s")
    return n / secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", default="generate,group-shared,group-unshared")
    ap.add_argument("--json", action="store_true", help="one JSON object per row (for compare.sh)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Model().eval()
    if not args.json:
        print(f"torch {torch.__version__}, {args.threads} threads; tokens/s = new tokens / wall time "
              "(prefill included)")
    for row in args.rows.split(","):
        bench(row, model, args.repeats, args.json)


if __name__ == "__main__":
    main()
