#!/usr/bin/env bash
# Alternate `aha bench --json` and its peers ROUNDS times, so both sides see the same machine
# load, then print each row's medians and ratios (bench/compare_report.py).
#   bench/compare.sh [ROUNDS] [ROWS] [THREADS]
# ROWS, comma-separated: train-small, train-large (peer: bench/torch_train_step.py), generate,
# group-shared, group-unshared (bench/torch_generate.py), grpo-step (TRL's GRPOTrainer through
# trl_grpo_bench.py; set TRL_SCRIPT if it is not at ../shared/bench/trl/ beside the checkout).
# Environment: PYTHON (torch/transformers/trl), AHA (the binary), AHA_MODEL (a checkpoint for
# aha's generate/grpo-step rows), STEPS (timed steps per row on every side, default 5), OUT
# (where the tagged rows go), TRL_WORKDIR (TRL's model).
set -euo pipefail
rounds=${1:-3}
rows=${2:-train-small,train-large}
threads=${3:-2}
steps=${STEPS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-/work/refpy/bin/python}
aha=${AHA:-$here/target/release/aha}
report="$py $here/bench/compare_report.py"
out=${OUT:-$(mktemp -d /tmp/aha-compare.XXXXXX)/rows.jsonl}
: > "$out"

pick() { # the ROWS entries among "$@", comma-separated
  local keep=() r
  for r in ${rows//,/ }; do
    for w in "$@"; do [[ $r == "$w" ]] && keep+=("$r"); done
  done
  (IFS=,; echo "${keep[*]-}")
}
train_rows=$(pick train-small train-large)
gen_rows=$(pick generate group-shared group-unshared)
grpo_row=$(pick grpo-step)

if [[ -n $grpo_row ]]; then
  trl_script=${TRL_SCRIPT:-$here/../shared/bench/trl/trl_grpo_bench.py}
  [[ -f $trl_script ]] || { echo "no TRL script at $trl_script: set TRL_SCRIPT" >&2; exit 1; }
  trl_dir=${TRL_WORKDIR:-/tmp/aha-trl-bench}
  mkdir -p "$trl_dir"
  if [[ ! -f $trl_dir/model/config.json ]]; then
    (cd "$trl_dir" && WORKDIR=$trl_dir "$py" "$trl_script" build >/dev/null)
  fi
fi
model_args=()
[[ -n ${AHA_MODEL:-} ]] && model_args=(--model "$AHA_MODEL")

for r in $(seq "$rounds"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "== round $r (load $load)" >&2
  # grpo-step in a process of its own: the allocator keeps what earlier rows freed, so its peak
  # RSS would include the large training row's buffers.
  for aha_rows in $(pick train-small train-large generate group-shared group-unshared) $grpo_row; do
    RAYON_NUM_THREADS=$threads "$aha" bench --json --steps "$steps" --warmup 1 \
      --shapes "$aha_rows" "${model_args[@]}" \
      | $report tag aha "$r" "$load" | tee -a "$out" >&2
  done
  if [[ -n $train_rows ]]; then
    "$py" "$here/bench/torch_train_step.py" --json --shapes "$train_rows" \
      --threads "$threads" --steps "$steps" --warmup 1 \
      | $report tag torch "$r" "$load" | tee -a "$out" >&2
  fi
  if [[ -n $gen_rows ]]; then
    "$py" "$here/bench/torch_generate.py" --json --rows "$gen_rows" \
      --threads "$threads" --repeats "$steps" \
      | $report tag torch "$r" "$load" | tee -a "$out" >&2
  fi
  if [[ -n $grpo_row ]]; then
    # TRL sets 2 threads itself; /usr/bin/time gives its peak RSS.
    (cd "$trl_dir" && WORKDIR=$trl_dir /usr/bin/time -f %M -o "$trl_dir/maxrss" \
      "$py" "$trl_script" bench --beta 0.0 --force-full --tag "compare$r" \
      --steps "$steps" --warmup 1 >"$trl_dir/out" 2>&1)
    $report trl "$r" "$load" "$(tail -n1 "$trl_dir/maxrss" 2>/dev/null || echo -)" \
      <"$trl_dir/out" | tee -a "$out" >&2
  fi
done
echo "rows: $out" >&2
$report report "$out"
