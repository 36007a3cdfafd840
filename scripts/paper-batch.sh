#!/usr/bin/env bash
# Experiment (c) of docs/paper.md: the inner batch size with 25 samples per task (5-way, 5
# training shots per class) and 4 inner updates, for Reptile and FOMAML with the default
# schedule (the task's samples cycled in the order drawn, shared tail) and FOMAML with a
# separate tail where the batch leaves room for one (n/a where it does not). The budget of
# scripts/paper-lib.sh; 5-way 1-shot accuracy.
# Usage: bash scripts/paper-batch.sh [meta-iterations] [held-out episodes] [batch sizes...]
#   (default 500, 200, 5 10 15 20 25). Runs go to out/paper-batch/,
#   the cells to its results.csv and their plot to ${PLOT:-out/paper-batch/accuracy.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/paper-lib.sh
read_args 500 5 10 15 20 25 -- "$@"
batches=("${values[@]}")
runs=out/paper-batch
mkdir -p "$runs"
csv_header "$runs" inner_batch

printf '| algorithm | tail |'
printf ' batch %s |' "${batches[@]}"
printf '\n|---|---|'
printf -- '---:|%.0s' "${batches[@]}"
printf '\n'
for run in reptile:shared fomaml:shared fomaml:separate; do
  algo="${run%:*}"
  tail="${run#*:}"
  printf '| `%s` | %s |' "$algo" "$tail"
  for b in "${batches[@]}"; do
    if [ "$tail" = separate ] && [ $((25 - b)) -lt "$b" ]; then
      printf ' n/a |'
      continue
    fi
    r=$(accuracy "$runs/$algo-$tail-$b" "$episodes" --iters "$iters" \
      --algo "$algo" --train-shots 5 --inner-steps 4 --inner-batch "$b" --tail "$tail")
    printf ' %s |' "$r"
    csv_row "$runs" "$algo $tail tail" "$b" 1 "$r"
  done
  printf '\n'
done
python3 scripts/paper-plot.py "$runs/results.csv" "${PLOT:-$runs/accuracy.png}"
