# Sourced by the Omniglot experiment scripts of docs/paper.md (paper-schedule.sh,
# paper-batch.sh, paper-outer-step.sh): the budget they share and one measurement.
#
# The budget (docs/paper.md says why): 5-way Omniglot, the paper's split, a CNN of 16 filters
# per convolution, meta-batch 5, a plain-SGD inner loop at lr 0.1 (as paper-omniglot.sh), seed 0;
# the meta-iterations and episodes are the scripts' arguments. Every run is `nice -n 19`, one at
# a time. Needs ../shared/data/omniglot (or DATA=folder).
data="${DATA:-../shared/data/omniglot}"
anole=target/release/anole
budget=(--ways 5 --filters 16 --inner-opt sgd --inner-lr 0.1 --seed 0)
cargo build --release -q -p anole-trainer

# accuracy OUT EPISODES TRAIN-FLAGS...: meta-train into OUT with the budget and TRAIN-FLAGS, then
# print "mean ± 95% interval" (percent) of the 5-way 1-shot accuracy on EPISODES held-out
# episodes with 5 queries per class, all layers adapting with the blob's settings.
accuracy() {
  local out=$1 episodes=$2
  shift 2
  nice -n 19 "$anole" train omniglot --data "$data" --out "$out" "${budget[@]}" \
    --shots 1 --eval-tasks 10 "$@" >/dev/null || return 1
  nice -n 19 "$anole" eval --model "$out" --data "$data" --shots 1 --queries 5 \
    --tasks "$episodes" --json |
    python3 -c 'import json, sys
a = json.load(sys.stdin)["reports"][0]["rows"][0]["accuracy"]
print("%.1f ± %.1f" % (100 * a["mean"], 100 * a["ci95"]))'
}
