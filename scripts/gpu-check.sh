#!/usr/bin/env bash
# The one check to run on a GPU machine (never run here: no GPU). Builds the CUDA binary unless
# AHA_CUDA_BIN names one, compares logprobs on CUDA with the CPU in the same dtype on the golden
# fixtures (f32 1e-4; bf16 0.05, where rounding order alone moves logprobs by a few hundredths), runs the smoke GRPO config and a reference-shape GRPO step on CUDA, then prints
# `aha bench` on CUDA. Needs the driver's libcuda.so.1 and the CUDA 13 libraries on LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${AHA_CUDA_BIN:-target/cuda/release/aha}
[[ -x "$bin" ]] || scripts/build-cuda.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
out=$(mktemp -d)

fixtures=crates/model/tests/fixtures
for model in qwen2_tied_f32 llama_bf16_sharded qwen3_qknorm_f32; do
  printf '{"text": "The quick brown fox jumps over the lazy dog. 12 + 30 = 42"}\n' > "$out/in.jsonl"
  for dtype in f32 bf16; do
    tol=$([[ $dtype == f32 ]] && echo 1e-4 || echo 5e-2)
    "$bin" logprobs --model "$fixtures/$model" --input "$out/in.jsonl" --dtype $dtype \
      --output "$out/cpu.jsonl"
    "$bin" logprobs --model "$fixtures/$model" --input "$out/in.jsonl" --device cuda --dtype $dtype \
      --output "$out/cuda.jsonl"
    python3 - "$out/cpu.jsonl" "$out/cuda.jsonl" "$tol" "$model $dtype" <<'PY'
import json, sys
a = [json.loads(l)["logprobs"] for l in open(sys.argv[1])]
b = [json.loads(l)["logprobs"] for l in open(sys.argv[2])]
d = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
print(f"{sys.argv[4]}: max |Δ logprob| CUDA vs CPU {d:.2e} (tolerance {sys.argv[3]})")
sys.exit(0 if d <= float(sys.argv[3]) else 1)
PY
  done
done

"$bin" train configs/smoke.toml --run-dir "$out/smoke" --device cuda --set steps=3 --set output.progress=false
"$bin" train configs/smoke.toml --run-dir "$out/smoke-bf16" --device cuda --dtype bf16 --set steps=3 \
  --set output.progress=false
"$bin" bench --device cuda --dtype bf16 --shapes train-small,train-large,generate,grpo-step
# MFU: train rows' GFLOP/s divided by the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s).
echo "MFU = GFLOP/s / 989000 on an H100/H200 SXM"
