#!/usr/bin/env bash
# Reproduces the sine table of docs/experiments.md: Reptile, first-order MAML, joint training and a random
# initialization, each evaluated on 1,000 held-out tasks with 10 support points (MSE after
# 0/1/8/32 steps, 95% confidence interval). Writes the shipped Reptile model to models/sine.
# Usage: bash scripts/sine-table.sh [meta-iterations]   (default: the recipe's, as the shipped model)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=()
[ -z "${1:-}" ] || iters=(--iters "$1")
cargo build --release -q -p anole-trainer
anole=target/release/anole
runs=out/sine-table
mkdir -p "$runs"

$anole train sine --out models/sine "${iters[@]}" --seed 0 >/dev/null
$anole train sine --out "$runs/fomaml" "${iters[@]}" --seed 0 --algo fomaml >/dev/null
$anole train sine --out "$runs/joint" "${iters[@]}" --seed 0 --algo joint >/dev/null
$anole train sine --out "$runs/random" --iters 0 --seed 0 >/dev/null

row() { # name model
  $anole eval --model "$2" --task sine --tasks 1000 --shots 10 --steps 32 --json |
    python3 -c 'import json, sys
r = json.load(sys.stdin)["results"]
print("| " + sys.argv[1] + " | " + " | ".join("%.3f ± %.3f" % (x["loss"]["mean"], x["loss"]["ci95"]) for x in r) + " |")' "$1"
}
echo "| initialization | 0 steps | 1 step | 8 steps | 32 steps |"
echo "|---|---|---|---|---|"
row "Reptile (\`models/sine\`)" models/sine
row "first-order MAML" "$runs/fomaml"
row "joint training" "$runs/joint"
row "random init" "$runs/random"
