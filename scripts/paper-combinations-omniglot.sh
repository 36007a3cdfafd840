#!/usr/bin/env bash
# The Omniglot gradient-combination table of docs/paper.md: 4 inner steps on minibatches of 10
# of 5-way tasks with 10 training shots per class, the meta-update made from different
# combinations of the inner updates (`--meta-update`), 5-way 1-shot accuracy against
# meta-iterations: each run is stopped at even intervals (`--stop-after`), its checkpoint
# evaluated, and resumed (the result is the uninterrupted run's). The budget of
# scripts/paper-lib.sh.
# Usage: bash scripts/paper-combinations-omniglot.sh [meta-iterations] [held-out episodes]
#   [evaluations]   (default 500, 200, 4). Runs go to out/paper-combinations-omniglot/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/paper-lib.sh
read_args 500 4 -- "$@"
evals="${values[0]}"
runs=out/paper-combinations-omniglot
mkdir -p "$runs"

printf '| meta-update |'
for ((i = 1; i <= evals; i++)); do printf ' %d |' $((iters * i / evals)); done
printf '\n|---|'
for ((i = 1; i <= evals; i++)); do printf -- '---:|'; done
printf '\n'
for update in g4 g1+g2+g3+g4 g3 g1+g2+g3 g2 g1+g2; do
  out="$runs/$update"
  rm -rf "$out"
  printf '| `%s` |' "$update"
  for ((i = 1; i <= evals; i++)); do
    flags=(--iters "$iters" --inner-steps 4 --train-shots 10 --inner-batch 10 --meta-update "$update")
    [ "$i" -gt 1 ] && flags+=(--resume)
    if [ "$i" -lt "$evals" ]; then
      train "$out" "${flags[@]}" --stop-after $((iters * i / evals))
      printf ' %s |' "$(evaluate "$out/checkpoint/params.postcard" "$episodes")"
    else
      train "$out" "${flags[@]}"
      printf ' %s |' "$(evaluate "$out/init.postcard" "$episodes")"
    fi
  done
  printf '\n'
done
