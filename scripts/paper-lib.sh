# Sourced by the Omniglot experiment scripts of docs/paper.md (paper-schedule.sh,
# paper-batch.sh, paper-outer-step.sh): the budget they share and its measurements.
#
# The budget (docs/paper.md says why): 5-way Omniglot, the paper's split, a CNN of 16 filters
# per convolution, meta-batch 5, a plain-SGD inner loop at lr 0.1 (as paper-omniglot.sh), seed 0;
# the meta-iterations and episodes are the scripts' arguments. Every run is `nice -n 19`, one at
# a time. Needs ../shared/data/omniglot (or DATA=folder).
data="${DATA:-../shared/data/omniglot}"
anole=target/release/anole
budget=(--ways 5 --filters 16 --inner-opt sgd --inner-lr 0.1 --seed 0)
cargo build --release -q -p anole-trainer

# read_args ITERS DEFAULTS... -- ARGS...: the scripts' arguments [meta-iterations] [held-out
# episodes] [values...]: sets iters (default ITERS), episodes (default 200) and the array values
# (the experiment's grid, default DEFAULTS).
read_args() {
  local default_iters=$1 defaults=()
  shift
  while [ "$1" != -- ]; do
    defaults+=("$1")
    shift
  done
  shift
  iters="${1:-$default_iters}"
  episodes="${2:-200}"
  shift $(($# < 2 ? $# : 2))
  values=("$@")
  [ ${#values[@]} -gt 0 ] || values=("${defaults[@]}")
}

# train OUT TRAIN-FLAGS...: meta-train into OUT with the budget and TRAIN-FLAGS (the card's own
# evaluation kept to 10 episodes: `evaluate` measures).
train() {
  local out=$1
  shift
  nice -n 19 "$anole" train omniglot --data "$data" --out "$out" "${budget[@]}" \
    --shots 1 --eval-tasks 10 "$@" >/dev/null
}

# evaluate MODEL EPISODES: "mean ± 95% interval" (percent) of the 5-way 1-shot accuracy of the
# blob MODEL on EPISODES held-out episodes of the paper's split with 5 queries per class, all
# layers adapting with the blob's settings.
evaluate() {
  nice -n 19 "$anole" eval --model "$1" --data "$data" --split paper --split-seed 0 \
    --shots 1 --queries 5 --tasks "$2" --json |
    python3 -c 'import json, sys
a = json.load(sys.stdin)["reports"][0]["rows"][0]["accuracy"]
print("%.1f ± %.1f" % (100 * a["mean"], 100 * a["ci95"]))'
}

# accuracy OUT EPISODES TRAIN-FLAGS...: train, then evaluate what it wrote.
accuracy() {
  local out=$1 episodes=$2
  shift 2
  train "$out" "$@" || return 1
  evaluate "$out/init.postcard" "$episodes"
}
