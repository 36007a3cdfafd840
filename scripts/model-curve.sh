#!/usr/bin/env bash
# Accuracy against meta-iterations of a shipped Omniglot model's own recipe: its card's command
# run again, stopped at every measuring point (`--stop-after`) and resumed (`--resume`), the
# parameters at each point evaluated on 1,000 held-out episodes of the card's split (1- and
# 5-shot, device normalisation, the blob's adaptation, all layers and the head alone).
#
# Usage: [EVAL_ONLY=1] bash scripts/model-curve.sh [MODEL] [POINTS...]
#   MODEL   a folder under models/ (default models/omniglot-5way)
#   POINTS  measuring points below the card's meta-iterations (default 5000 10000 20000); the
#           card's own count is always the last point
# Writes out/curve-NAME/: results.csv, accuracy.png, a markdown table on stdout, and says
# whether the final parameters are the shipped model's bytes. EVAL_ONLY=1 evaluates the
# parameters an earlier run left (out/curve-NAME/at-P.postcard) without training again.
# Every point starts the head as the card says (`head_start`): a checkpoint's blob does not
# record it. Every run is `nice -n 19`.
# Needs ../shared/data/omniglot (or DATA=folder). The 5-way model's training is 44 minutes on an
# idle 2-core machine (its card); beside other jobs it took 81; each point's evaluation about 2.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/omniglot-5way}
shift $(($# > 0 ? 1 : 0))
data="${DATA:-../shared/data/omniglot}"
name=$(basename "$model")
runs=out/curve-$name
anole=target/release/anole
cargo build --release -q -p anole-trainer

# The card's command, its --out and --data replaced, one argument per line.
mapfile -t cmd < <(python3 - "$model/card.json" "$runs/run" "$data" <<'EOF'
import json, shlex, sys
card, out, data = sys.argv[1:]
args = shlex.split(json.load(open(card))["command"])
if args[:2] != ["anole", "train"]:
    sys.exit(f"{card}: the command is not an 'anole train' run: {args[:2]}")
for flag, value in (("--out", out), ("--data", data)):
    if flag not in args:
        sys.exit(f"{card}: the command has no {flag}")
    args[args.index(flag) + 1] = value
print("\n".join(args[2:]))
EOF
)
last=$(python3 -c 'import json, shlex, sys
a = shlex.split(json.load(open(sys.argv[1]))["command"])
print(a[a.index("--iters") + 1])' "$model/card.json")
points=()
for p in "${@:-5000 10000 20000}"; do
  for q in $p; do [ "$q" -lt "$last" ] && points+=("$q"); done
done
points+=("$last")

head_start=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["head_start"])' "$model/card.json")
if [ "${EVAL_ONLY:-}" != 1 ]; then
  rm -rf "$runs"
  mkdir -p "$runs"
  resume=()
  for p in "${points[@]}"; do
    stop=()
    [ "$p" = "$last" ] || stop=(--stop-after "$p")
    echo "training to meta-iteration $p" >&2
    nice -n 19 "$anole" train "${cmd[@]}" --checkpoint-every "$last" "${resume[@]}" "${stop[@]}" \
      >"$runs/train-$p.log" 2>&1 || { tail -5 "$runs/train-$p.log" >&2; exit 1; }
    if [ "$p" = "$last" ]; then
      cp "$runs/run/init.postcard" "$runs/at-$p.postcard"
    else
      cp "$runs/run/checkpoint/params.postcard" "$runs/at-$p.postcard"
    fi
    resume=(--resume)
  done
fi

echo "run,meta_iterations,shots,accuracy,ci95" >"$runs/results.csv"
for p in "${points[@]}"; do
  echo "evaluating meta-iteration $p" >&2
  nice -n 19 "$anole" eval --model "$runs/at-$p.postcard" --task omniglot --data "$data" \
    --held-out "$model/card.json" --head-start "$head_start" --shots 1,5 --adapt both \
    --norm device --tasks 1000 --json \
    >"$runs/eval-$p.json"
  python3 - "$runs/eval-$p.json" "$p" >>"$runs/results.csv" <<'EOF'
import json, sys
path, p = sys.argv[1:]
for report in json.load(open(path))["reports"]:
    for row in report["rows"]:
        a = row["accuracy"]
        run = "all layers" if row["adaptation"] == "all" else "head only"
        print(f"{run},{p},{report['shots']},{100 * a['mean']:.2f},{100 * a['ci95']:.2f}")
EOF
done
python3 scripts/paper-plot.py "$runs/results.csv" "$runs/accuracy.png"

python3 - "$runs/results.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = list(dict.fromkeys((r["shots"], r["run"]) for r in rows))
print("| meta-iterations | " + " | ".join(f"{s}-shot, {run}" for s, run in cols) + " |")
print("|---:|" + "---:|" * len(cols))
for p in dict.fromkeys(r["meta_iterations"] for r in rows):
    cells = {(r["shots"], r["run"]): f"{r['accuracy']} ± {r['ci95']}" for r in rows if r["meta_iterations"] == p}
    print(f"| {int(p):,} | " + " | ".join(cells[c] for c in cols) + " |")
EOF
if cmp -s "$runs/run/init.postcard" "$model/init.postcard"; then
  echo "the run's init.postcard is the shipped $model/init.postcard, byte for byte"
else
  echo "the run's init.postcard differs from the shipped $model/init.postcard"
fi
