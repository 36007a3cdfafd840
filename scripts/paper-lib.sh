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

# evaluate MODEL EPISODES [SHOTS]: "mean ± 95% interval" (percent) of the 5-way SHOTS-shot
# (default 1) accuracy of the blob MODEL on EPISODES held-out episodes of the paper's split with
# 5 queries per class, all layers adapting with the blob's settings.
evaluate() {
  nice -n 19 "$anole" eval --model "$1" --data "$data" --split paper --split-seed 0 \
    --shots "${3:-1}" --queries 5 --tasks "$2" --json |
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

# snapshots OUT POINTS TRAIN-FLAGS...: one training run into OUT (TRAIN-FLAGS must hold
# --iters, the last of the space-separated POINTS), stopped at every other point
# (`--stop-after`) and resumed (`--resume`), leaving the parameters at every point P in
# OUT/at-P.postcard: the points of an accuracy-against-meta-iterations curve are one run.
snapshots() {
  local out=$1 points=($2) last p
  shift 2
  last=${points[-1]}
  rm -rf "$out"
  local resume=()
  for p in "${points[@]}"; do
    local stop=()
    [ "$p" = "$last" ] || stop=(--stop-after "$p")
    train "$out" --checkpoint-every "$last" "${resume[@]}" "${stop[@]}" "$@" \
      2>"$out.err" || { cat "$out.err" >&2; return 1; }
    if [ "$p" = "$last" ]; then
      cp "$out/init.postcard" "$out/at-$p.postcard"
    else
      cp "$out/checkpoint/params.postcard" "$out/at-$p.postcard"
    fi
    resume=(--resume)
  done
  rm -f "$out.err"
}

# curves RUNS POINTS NAME...: with every NAME trained by snapshots into RUNS/NAME, the 5-way
# 1-shot and 5-shot accuracy of each at each point on $episodes episodes: a markdown table per
# shot count on stdout, the points in RUNS/results.csv and their plot in
# ${PLOT:-RUNS/accuracy.png}.
curves() {
  local runs=$1 points=($2) name p shots r
  shift 2
  csv_header "$runs" meta_iterations
  for shots in 1 5; do
    printf '\n5-way %s-shot:\n\n| run |' "$shots"
    printf ' %s |' "${points[@]}"
    printf '\n|---|'
    printf -- '---:|%.0s' "${points[@]}"
    printf '\n'
    for name in "$@"; do
      printf '| `%s` |' "$name"
      for p in "${points[@]}"; do
        r=$(evaluate "$runs/$name/at-$p.postcard" "$episodes" "$shots")
        printf ' %s |' "$r"
        csv_row "$runs" "$name" "$p" "$shots" "$r"
      done
      printf '\n'
    done
  done
  python3 scripts/paper-plot.py "$runs/results.csv" "${PLOT:-$runs/accuracy.png}"
}

# csv_header RUNS X-NAME: start RUNS/results.csv, its varied quantity named X-NAME.
csv_header() {
  echo "run,$2,shots,accuracy,ci95" >"$1/results.csv"
}

# csv_row RUNS RUN X SHOTS "MEAN ± CI": add a measurement to RUNS/results.csv.
csv_row() {
  echo "$2,$3,$4,${5% ± *},${5#* ± }" >>"$1/results.csv"
}

# curve_args NAME ARGS...: the arguments of an accuracy-against-meta-iterations script
# ([meta-iterations] [held-out episodes] [measuring points...], default 4000, 200, 500 1000
# 2000): sets iters, episodes, at (the points, the whole run last) and runs (out/NAME, made).
curve_args() {
  local name=$1
  shift
  read_args 4000 500 1000 2000 -- "$@"
  at=$(points "$iters" "${values[@]}")
  runs=out/$name
  mkdir -p "$runs"
}

# points ITERS VALUES...: the measuring points below ITERS among VALUES, then ITERS.
points() {
  local iters=$1 p out=()
  shift
  for p in "$@"; do
    [ "$p" -lt "$iters" ] && out+=("$p")
  done
  echo "${out[*]} $iters"
}
