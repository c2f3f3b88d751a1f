"""Write a random-weight checkpoint with Qwen2.5-0.5B's exact shape, stored in bf16.

No model hub is reachable here, so the 0.5B benchmark row runs on random weights: speed and
memory depend on the shape, not on the values. The config is Qwen2.5-0.5B's (hidden 896,
24 layers, 14/2 heads, SwiGLU 4864, vocab 151936, tied embeddings, rope_theta 1e6): 494M
parameters, about 1 GB in bf16. The tokenizer is the small test fixture's (ids below 320); the
benchmarks feed random ids over the whole vocabulary and never decode text.

Usage: /work/refpy/bin/python bench/make_qwen05b.py --out /tmp/qwen05b [--seed 0]
"""

import argparse
import pathlib
import shutil

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

FIXTURE = pathlib.Path(__file__).resolve().parent.parent / "crates/model/tests/fixtures/tokenizer"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = Qwen2Config(
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        vocab_size=151936,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        hidden_act="silu",
        bos_token_id=151643,
        eos_token_id=151643,
        use_sliding_window=False,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(args.seed)
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(args.out, safe_serialization=True, max_shard_size="4GB")
    shutil.copy(FIXTURE / "tokenizer.json", args.out / "tokenizer.json")
    print(f"wrote {n / 1e6:.1f}M parameters (bf16) to {args.out}")


if __name__ == "__main__":
    main()
