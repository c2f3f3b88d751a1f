"""PyTorch eager baseline for `aha bench`'s training-step rows.

The same shapes, a minimal Qwen2-shaped decoder in plain torch (RMSNorm, q/k/v bias, RoPE in the
rotate-half layout, grouped-query attention, SwiGLU, untied head), f32, AdamW, next-token
cross-entropy. Prints one line per shape: median seconds per step, tokens/s and the
forward/backward/optimizer split. Used only for benchmarking; aha never imports torch.

    /work/refpy/bin/python bench/torch_train_step.py [--shapes train-small,train-large] [--steps 5] [--json]
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = {
    # name: (d_model, layers, heads, kv_heads, ffn, vocab, batch, seq)
    "train-small": (256, 4, 8, 2, 688, 1024, 8, 256),
    "train-large": (1024, 4, 16, 4, 2816, 1024, 4, 256),
}


class Layer(torch.nn.Module):
    def __init__(self, d, h, kh, ffn):
        super().__init__()
        e = d // h
        self.h, self.kh, self.e = h, kh, e
        self.q = torch.nn.Linear(d, h * e, bias=True)
        self.k = torch.nn.Linear(d, kh * e, bias=True)
        self.v = torch.nn.Linear(d, kh * e, bias=True)
        self.o = torch.nn.Linear(h * e, d, bias=False)
        self.gate = torch.nn.Linear(d, ffn, bias=False)
        self.up = torch.nn.Linear(d, ffn, bias=False)
        self.down = torch.nn.Linear(ffn, d, bias=False)
        self.n1 = torch.nn.Parameter(torch.ones(d))
        self.n2 = torch.nn.Parameter(torch.ones(d))

    def forward(self, x, cos, sin, attn):
        n, t, _ = x.shape
        xn = rms_norm(x, self.n1)
        q = self.q(xn).view(n, t, self.h, self.e).transpose(1, 2)
        k = self.k(xn).view(n, t, self.kh, self.e).transpose(1, 2)
        v = self.v(xn).view(n, t, self.kh, self.e).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        g = self.h // self.kh
        # HF's repeat_kv: each key/value head serves g query heads.
        k = k[:, :, None].expand(n, self.kh, g, t, self.e).reshape(n, self.h, t, self.e)
        v = v[:, :, None].expand(n, self.kh, g, t, self.e).reshape(n, self.h, t, self.e)
        if attn == "sdpa":
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-1, -2)) / self.e**0.5
            mask = torch.ones(t, t, dtype=torch.bool).triu(1)
            a = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(n, t, -1))
        xn = rms_norm(x, self.n2)
        return x + self.down(F.silu(self.gate(xn)) * self.up(xn))


def rms_norm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Model(torch.nn.Module):
    def __init__(self, d, layers, h, kh, ffn, vocab, seq):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.layers = torch.nn.ModuleList(Layer(d, h, kh, ffn) for _ in range(layers))
        self.norm = torch.nn.Parameter(torch.ones(d))
        self.head = torch.nn.Linear(d, vocab, bias=False)
        e = d // h
        inv = 1.0 / (10000.0 ** (torch.arange(0, e, 2, dtype=torch.float32) / e))
        ang = torch.arange(seq, dtype=torch.float32)[:, None] * inv[None]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())

    def forward(self, ids, attn):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, attn)
        return self.head(rms_norm(x, self.norm))


def bench(name, steps, warmup, attn, as_json):
    d, layers, h, kh, ffn, vocab, batch, seq = SHAPES[name]
    torch.manual_seed(0)
    model = Model(d, layers, h, kh, ffn, vocab, seq)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, vocab, (batch, seq))
    times = []
    for i in range(warmup + steps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        logits = model(ids, attn)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        c3 = time.process_time()
        if i >= warmup:
            times.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2, c3 - c0))
    total, fwd, bwd, step, cpu = (statistics.median(c) for c in zip(*times))
    tokens = batch * seq
    if as_json:
        print(json.dumps({"row": name, "peer": "torch", "attn": attn, "seconds": total,
                          "tokens_per_s": tokens / total, "fwd_ms": 1e3 * fwd, "bwd_ms": 1e3 * bwd,
                          "optim_ms": 1e3 * step, "cpu_s": cpu}), flush=True)
        return
    print(
        f"torch {name:<12} attn={attn:<5} median {total:.4f} s  {tokens / total:8.0f} tokens/s  "
        f"fwd {1e3 * fwd:.0f} ms, bwd {1e3 * bwd:.0f} ms, adamw {1e3 * step:.0f} ms; cpu {cpu:.2f} s/step"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="train-small,train-large")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the machine has 2 cores)")
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "naive"],
                   help="sdpa: F.scaled_dot_product_attention (HF's default); naive: matmul+softmax like aha")
    p.add_argument("--json", action="store_true", help="one JSON object per row (for compare.sh)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.json:
        print(json.dumps({"row": "matmul", "peer": "torch", "gflop_per_s": matmul_gflops()}), flush=True)
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"matmul 1024^3: {matmul_gflops():.1f} GFLOP/s")
    for name in a.shapes.split(","):
        bench(name, a.steps, a.warmup, a.attn, a.json)


def matmul_gflops(n=1024, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(ts) / 1e9


if __name__ == "__main__":
    main()
