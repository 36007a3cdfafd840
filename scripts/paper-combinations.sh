#!/usr/bin/env bash
# The gradient-combination table of docs/paper.md: the paper's sine recipe with 4 inner steps
# and the meta-update made from different combinations of the inner updates (`--meta-update`),
# each evaluated on 1,000 held-out tasks with 10 support points (MSE after 0/1/8/32 steps, 95%
# confidence interval).
# Usage: bash scripts/paper-combinations.sh [meta-iterations]   (default 30000); runs go to out/paper-combinations/.
set -euo pipefail
cd "$(dirname "$0")/.."
iters="${1:-30000}"
cargo build --release -q -p anole-trainer
anole=target/release/anole
runs=out/paper-combinations
mkdir -p "$runs"

echo "| meta-update | 0 steps | 1 step | 8 steps | 32 steps |"
echo "|---|---|---|---|---|"
for update in g4 g1+g2+g3+g4 g3 g1+g2+g3 g2 g1+g2; do
  $anole train sine --out "$runs/$update" --iters "$iters" --seed 0 --inner-steps 4 \
    --meta-update "$update" >/dev/null
  $anole eval --model "$runs/$update" --task sine --tasks 1000 --shots 10 --steps 32 --json |
    python3 -c 'import json, sys
r = json.load(sys.stdin)["results"]
print("| `" + sys.argv[1] + "` | " + " | ".join("%.3f ± %.3f" % (x["loss"]["mean"], x["loss"]["ci95"]) for x in r) + " |")' "$update"
done
