#!/usr/bin/env bash
# The worked example of docs/own-tasks.md: writes a task family of damped oscillations (one CSV
# per device) and a starting network as ONNX (scripts/own-tasks.py), meta-trains it with
# Reptile and with joint training from that ONNX init, exports the starting weights as they are
# (--iters 0), and compares the three on the held-out devices: MSE after 0 to 32 adaptation
# steps on 10 support rows (a Markdown table on stdout, the plot in OUT/own-tasks.png).
# Usage: bash scripts/own-tasks.sh [OUT] [meta-iterations]   (defaults: out/own-tasks, 50000)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/own-tasks}"
iters="${2:-50000}"
cargo build --release -q -p anole-trainer --bin anole --example adaptation_curves
anole=target/release/anole

python3 scripts/own-tasks.py "$out/data"
train() { # name extra-flags...
  local name=$1
  shift
  $anole train csv --data "$out/data/train" --eval-data "$out/data/eval" \
    --init "$out/data/init.onnx" --out "$out/$name" --eval-tasks 1000 "$@" >/dev/null
}
train reptile --iters "$iters"
train joint --iters "$iters" --algo joint
train start --iters 0

target/release/examples/adaptation_curves --data "$out/data/eval" --shots 10 --steps 32 \
  --title "damped oscillations, held-out devices" --out "$out/own-tasks.png" \
  "Reptile=$out/reptile/init.postcard" "joint training=$out/joint/init.postcard" \
  "starting weights (init.onnx)=$out/start/init.postcard"
