#!/usr/bin/env bash
# The sine table of docs/paper.md: Reptile, first-order and second-order MAML with the paper's
# sine recipe (seed 0), each evaluated on 1,000 held-out tasks with 10 support points (MSE after
# 0/1/8/32 steps, 95% confidence interval), with the training time per meta-iteration (the
# card's rate) and the peak resident memory of the `anole train` process (GNU time).
# Usage: bash scripts/paper-sine.sh [meta-iterations]   (default 30000); runs go to out/paper-sine/.
set -euo pipefail
cd "$(dirname "$0")/.."
iters="${1:-30000}"
cargo build --release -q -p anole-trainer
anole=target/release/anole
runs=out/paper-sine
mkdir -p "$runs"

echo "| algorithm | 0 steps | 1 step | 8 steps | 32 steps | µs / meta-iteration | peak memory (MB) |"
echo "|---|---|---|---|---|---:|---:|"
for algo in reptile fomaml maml; do
  /usr/bin/time -f %M -o "$runs/$algo.rss" \
    $anole train sine --out "$runs/$algo" --iters "$iters" --seed 0 --algo "$algo" >/dev/null
  $anole eval --model "$runs/$algo" --task sine --tasks 1000 --shots 10 --steps 32 --json |
    python3 -c 'import json, sys
algo, card, rss = sys.argv[1:]
r = json.load(sys.stdin)["results"]
rate = json.load(open(card))["meta_iterations_per_s"]
kb = int(open(rss).read().split()[-1])
print("| `" + algo + "` | " + " | ".join("%.3f ± %.3f" % (x["loss"]["mean"], x["loss"]["ci95"]) for x in r)
      + " | %.0f | %.1f |" % (1e6 / rate, kb / 1024))' "$algo" "$runs/$algo/card.json" "$runs/$algo.rss"
done
