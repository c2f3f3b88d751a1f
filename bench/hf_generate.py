"""transformers' `generate` on a checkpoint directory: the peer of `aha bench --model DIR --shapes generate`.

16 prompts x 32 random ids (the same count `aha bench` uses), 64 new tokens each by default,
multinomial sampling at temperature 1 with no EOS, so every row runs to the limit. Prints one
JSON object per dtype: tokens/s (generated tokens over wall time, prefill included; median over
repeats), CPU seconds per generation (the fairer figure on a loaded machine) and the
process's peak RSS so far (ru_maxrss, so run one dtype per process to read
each dtype's own peak).

Usage: /work/refpy/bin/python bench/hf_generate.py --model /tmp/qwen05b --dtype bf16
           [--threads 2] [--repeats 3] [--prompts 16] [--prompt-len 32] [--new-tokens 64]
"""

import argparse
import json
import resource
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (args.prompts, args.prompt_len), generator=g)
    mask = torch.ones_like(ids)
    secs, cpu = [], []
    for r in range(args.repeats + 1):  # the first run warms up and is not counted
        torch.manual_seed(r)
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                pad_token_id=0,
            )
        if r > 0:
            secs.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
        assert out.shape[1] == args.prompt_len + args.new_tokens, out.shape
    tokens = args.prompts * args.new_tokens
    median = statistics.median(secs)
    print(
        json.dumps(
            {
                "row": "hf-generate",
                "dtype": args.dtype,
                "threads": args.threads,
                "tokens_per_s": round(tokens / median, 1),
                "seconds": round(median, 3),
                "cpu_s": round(statistics.median(cpu), 3),
                "all_seconds": [round(s, 3) for s in secs],
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
