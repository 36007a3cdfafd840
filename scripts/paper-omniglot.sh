#!/usr/bin/env bash
# The Omniglot rows of docs/paper.md: Reptile, first-order and second-order MAML on 5-way
# Omniglot with the same plain-SGD inner loop (MAML differentiates through SGD steps) and a
# short budget, with the training time per meta-iteration (the card's rate), the peak resident
# memory of the `anole train` process (GNU time) and the held-out accuracy the card reports
# (all layers adapting, device normalisation).
# Usage: bash scripts/paper-omniglot.sh [meta-iterations] [held-out episodes]   (default 300, 200)
# Runs go to out/paper-omniglot/. Needs ../shared/data/omniglot (or DATA=folder).
set -euo pipefail
cd "$(dirname "$0")/.."
iters="${1:-300}"
episodes="${2:-200}"
data="${DATA:-../shared/data/omniglot}"
cargo build --release -q -p anole-trainer
anole=target/release/anole
runs=out/paper-omniglot
mkdir -p "$runs"

echo "| algorithm | 5-way 1-shot | 5-way 5-shot | ms / meta-iteration | peak memory (MB) |"
echo "|---|---:|---:|---:|---:|"
for algo in reptile fomaml maml; do
  /usr/bin/time -f %M -o "$runs/$algo.rss" \
    $anole train omniglot --data "$data" --out "$runs/$algo" --ways 5 --iters "$iters" --algo "$algo" \
      --inner-opt sgd --inner-lr 0.1 --eval-tasks "$episodes" >/dev/null
  python3 -c 'import json, sys
algo, card, rss = sys.argv[1:]
c = json.load(open(card))
acc = {r["shots"]: r["rows"][0]["accuracy"] for r in c["results"]["init.postcard"]}
kb = int(open(rss).read().split()[-1])
cell = lambda a: "%.1f ± %.1f" % (100 * a["mean"], 100 * a["ci95"])
print("| `%s` | %s | %s | %.0f | %.0f |" % (algo, cell(acc[1]), cell(acc[5]),
      1e3 / c["training_budget"]["meta_iterations_per_s"], kb / 1024))' "$algo" "$runs/$algo/card.json" "$runs/$algo.rss"
done
