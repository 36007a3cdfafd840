#!/usr/bin/env bash
# Experiment (b) of docs/paper.md: Reptile and FOMAML against the number of inner updates, with
# the last minibatch from the same samples as the others (shared tail) or held out of them
# (separate tail), and minibatches cycling through epochs of the task's samples (reshuffled) or
# drawn with replacement. 5-way Omniglot, 10 training shots per class (50 samples), inner batch
# 10, the budget of scripts/paper-lib.sh; 5-way 1-shot accuracy.
# Usage: bash scripts/paper-schedule.sh [meta-iterations] [held-out episodes] [inner updates...]
#   (default 500, 200, 2 4 8). Runs go to out/paper-schedule/,
#   the cells to its results.csv and their plot to ${PLOT:-out/paper-schedule/accuracy.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/paper-lib.sh
read_args 500 2 4 8 -- "$@"
steps=("${values[@]}")
runs=out/paper-schedule
mkdir -p "$runs"
csv_header "$runs" inner_updates

printf '| algorithm | tail | minibatches |'
printf ' k = %s |' "${steps[@]}"
printf '\n|---|---|---|'
printf -- '---:|%.0s' "${steps[@]}"
printf '\n'
for mb in reshuffle replace; do
  for algo in reptile fomaml; do
    for tail in shared separate; do
      printf '| `%s` | %s | %s |' "$algo" "$tail" "$mb"
      for k in "${steps[@]}"; do
        r=$(accuracy "$runs/$algo-$tail-$mb-$k" "$episodes" --iters "$iters" \
          --algo "$algo" --train-shots 10 --inner-batch 10 --inner-steps "$k" \
          --tail "$tail" --minibatches "$mb")
        printf ' %s |' "$r"
        csv_row "$runs" "$algo $tail tail $mb" "$k" 1 "$r"
      done
      printf '\n'
    done
  done
done
python3 scripts/paper-plot.py "$runs/results.csv" "${PLOT:-$runs/accuracy.png}"
