#!/usr/bin/env bash
# The main job, end to end: meta-train the sine initialization with Reptile, export it
# (ONNX + blob), then adapt it from 10 samples of a new task and show the result.
# Usage: bash scripts/demo.sh [meta-iterations]   (default: the recipe's, as the shipped model)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=()
[ -z "${1:-}" ] || iters=(--iters "$1")
out=out/demo
mkdir -p "$out"

cargo build --release -q -p anole-trainer
anole=target/release/anole

echo "== 1. meta-train (Reptile, sine family${1:+, $1 meta-iterations})"
$anole train sine --out "$out/sine" "${iters[@]}" --seed 0

echo "== 2. the exported initialization"
ls -l "$out/sine"
$anole inspect "$out/sine/init.postcard"

echo "== 3. a new task the model has never seen: y = 3.1 sin(x + 1.3); 10 samples to adapt on"
awk 'BEGIN { srand(7); print "x,y";
             for (i = 0; i < 10; i++) { x = -5 + 10 * rand(); printf "%.6f,%.6f\n", x, 3.1 * sin(x + 1.3) } }' > "$out/support.csv"
awk 'BEGIN { print "x"; for (i = 0; i <= 50; i++) printf "%.6f\n", -5 + i * 0.2 }' > "$out/query.csv"
cat "$out/support.csv"

echo "== 4. predict before adapting, then adapt (blob's recommended steps and lr) and predict"
$anole predict --model "$out/sine/init.postcard" --query "$out/query.csv" > "$out/before.csv"
$anole adapt --model "$out/sine/init.postcard" --support "$out/support.csv" --query "$out/query.csv" \
  --out "$out/adapted.postcard" --onnx "$out/adapted.onnx" > "$out/after.csv"

mse() { # query.csv predictions.csv -> MSE against the true curve
  paste -d, "$1" "$2" | awk -F, 'NR > 1 { t = 3.1 * sin($1 + 1.3); e += ($2 - t) ^ 2; n++ } END { printf "%.4f", e / n }'
}
echo
echo "| model | MSE on 51 query points of the new task |"
echo "|---|---|"
echo "| meta-initialization, no adaptation | $(mse "$out/query.csv" "$out/before.csv") |"
echo "| adapted on 10 samples | $(mse "$out/query.csv" "$out/after.csv") |"
echo
echo "adapted model: $out/adapted.postcard (blob) and $out/adapted.onnx; plots in $out/sine/"
