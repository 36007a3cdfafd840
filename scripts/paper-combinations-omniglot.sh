#!/usr/bin/env bash
# Experiment (a) of docs/paper.md on Omniglot: the meta-update made from different sums of four
# inner updates (`--meta-update`; g4 is FOMAML-like, g1+g2+g3+g4 Reptile), 5-way 1-shot and
# 5-shot accuracy against meta-iterations. 5-way tasks of 10 training shots per class (50
# samples), 4 inner steps on disjoint minibatches of 10, the budget of scripts/paper-lib.sh.
# Usage: bash scripts/paper-combinations-omniglot.sh [meta-iterations] [held-out episodes]
#   [measuring points...] (default 4000, 200, 500 1000 2000; the whole run is always the last
#   point). Runs go to out/paper-combinations-omniglot/, the points to its results.csv and the
#   plot to ${PLOT:-out/paper-combinations-omniglot/accuracy.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/paper-lib.sh
curve_args paper-combinations-omniglot "$@"
updates=(g4 g1+g2+g3+g4 g3 g1+g2+g3 g2 g1+g2)
for update in "${updates[@]}"; do
  snapshots "$runs/$update" "$at" --iters "$iters" --algo reptile --meta-update "$update" \
    --inner-steps 4 --train-shots 10 --inner-batch 10
done
curves "$runs" "$at" "${updates[@]}"
