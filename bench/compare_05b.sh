#!/usr/bin/env bash
# The Qwen2.5-0.5B-shape decoding row: aha (bf16 weights resident) against transformers'
# `generate` in bf16 and in f32 on the same bf16 checkpoint, alternated ROUNDS times; prints each
# run's tokens/s and peak RSS (from /usr/bin/time: the whole process, loading included), then the
# medians and aha's ratio to each peer. The checkpoint is random weights of the exact shape
# (bench/make_qwen05b.py), made once into CKPT.
#
# Usage: bench/compare_05b.sh [ROUNDS=3] [THREADS=2]
#        REPEATS=3 (timed generations per process) CKPT=/tmp/qwen05b AHA=target/release/aha PYTHON=/work/refpy/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
THREADS=${2:-2}
REPEATS=${REPEATS:-3}
CKPT=${CKPT:-/tmp/qwen05b}
AHA=${AHA:-target/release/aha}
PYTHON=${PYTHON:-/work/refpy/bin/python}
NEW=64
[ -f "$CKPT/model.safetensors" ] || "$PYTHON" bench/make_qwen05b.py --out "$CKPT"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# run TAG CMD...: one measured process; its JSON line (the last one) plus max RSS into OUT/TAG.
run() {
  local tag=$1
  shift
  /usr/bin/time -f "MAXRSS_KIB %M" "$@" >"$OUT/cur.out" 2>"$OUT/cur.err"
  local line rss
  line=$(grep '^{' "$OUT/cur.out" | tail -1)
  rss=$(awk '/^MAXRSS_KIB/ {print $2}' "$OUT/cur.err")
  echo "{\"tag\": \"$tag\", \"rss_kib\": $rss, \"row\": $line}" >>"$OUT/all.jsonl"
  echo "$tag: $line (max RSS $((rss / 1024)) MiB)"
}

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r, load: $(cut -d' ' -f1-3 /proc/loadavg)"
  RAYON_NUM_THREADS=$THREADS run aha "$AHA" bench --model "$CKPT" --shapes generate \
    --generate-new-tokens $NEW --steps "$REPEATS" --warmup 1 --json
  run hf-bf16 "$PYTHON" bench/hf_generate.py --model "$CKPT" --dtype bf16 --threads "$THREADS" \
    --new-tokens $NEW --repeats "$REPEATS"
  run hf-f32 "$PYTHON" bench/hf_generate.py --model "$CKPT" --dtype f32 --threads "$THREADS" \
    --new-tokens $NEW --repeats "$REPEATS"
done

"$PYTHON" - "$OUT/all.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for tag in ("aha", "hf-bf16", "hf-f32"):
    mine = [r for r in runs if r["tag"] == tag]
    med[tag] = (statistics.median(r["row"]["tokens_per_s"] for r in mine),
                statistics.median(r["rss_kib"] for r in mine) / 1024,
                statistics.median(r["row"]["cpu_s"] for r in mine))
    print(f"{tag:8} median {med[tag][0]:7.1f} tok/s, {med[tag][2]:7.2f} CPU s/generation, "
          f"max RSS {med[tag][1]:6.0f} MiB")
for peer in ("hf-bf16", "hf-f32"):
    print(f"aha / {peer}: {med['aha'][0] / med[peer][0]:.2f}x tokens/s, "
          f"{med[peer][2] / med['aha'][2]:.2f}x less CPU time")
PY
