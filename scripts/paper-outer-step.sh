#!/usr/bin/env bash
# Experiment (d) of docs/paper.md: FOMAML with a range of outer (meta) step sizes at 4 inner
# updates and inner batch 100: 5-way tasks of 20 training shots per class (100 samples, every
# Omniglot drawing of the character), so each minibatch is the whole task and the last one
# repeats the data of the others (shared tail). Reptile at the same settings and the recipe's
# outer step 1 for reference.
# The budget of scripts/paper-lib.sh; 5-way 1-shot accuracy.
# Usage: bash scripts/paper-outer-step.sh [meta-iterations] [held-out episodes] [outer steps...]
#   (default 150, 200, 0.1 0.3 1 3). Runs go to out/paper-outer-step/,
#   the cells to its results.csv and their plot to ${PLOT:-out/paper-outer-step/accuracy.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/paper-lib.sh
read_args 150 0.1 0.3 1 3 -- "$@"
steps=("${values[@]}")
runs=out/paper-outer-step
mkdir -p "$runs"
csv_header "$runs" outer_step

printf '| algorithm |'
printf ' outer step %s |' "${steps[@]}"
printf '\n|---|'
printf -- '---:|%.0s' "${steps[@]}"
printf '\n'
row() {
  local algo=$1
  shift
  printf '| `%s` |' "$algo"
  for e in "${steps[@]}"; do
    if [[ " $* " == *" $e "* ]]; then
      r=$(accuracy "$runs/$algo-$e" "$episodes" --iters "$iters" --algo "$algo" \
        --train-shots 20 --inner-steps 4 --inner-batch 100 --outer-lr "$e" || echo diverged)
      printf ' %s |' "$r"
      [ "$r" = diverged ] || csv_row "$runs" "$algo" "$e" 1 "$r"
    else
      printf ' – |'
    fi
  done
  printf '\n'
}
row fomaml "${steps[@]}"
row reptile 1
python3 scripts/paper-plot.py "$runs/results.csv" "${PLOT:-$runs/accuracy.png}" --logx
