#!/usr/bin/env bash
# Alternate `aha bench` and the PyTorch baseline ROUNDS times on the training-step shapes, so
# both see the same machine load; prints every run. Compare medians of tokens/s across rounds.
#   bench/compare.sh [ROUNDS] [SHAPES] [THREADS]
set -euo pipefail
rounds=${1:-3}
shapes=${2:-train-small,train-large}
threads=${3:-2}
py=${PYTHON:-/opt/refpy/bin/python}
here=$(cd "$(dirname "$0")/.." && pwd)
aha=${AHA:-$here/target/release/aha}
for r in $(seq "$rounds"); do
  echo "== round $r (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  RAYON_NUM_THREADS=$threads "$aha" bench --shapes "$shapes" | grep -E '^(matmul|train)'
  "$py" "$here/bench/torch_train_step.py" --shapes "$shapes" --threads "$threads"
done
