#!/usr/bin/env bash
# The fleet demonstrations, in Flower's simulation engine with 100 virtual devices and 10 a round.
#
# Sine (the default): federated Reptile against FedAvg on sine devices whose tasks come from a
# shifted family (amplitudes in [5, 10]; the shipped model was meta-trained on [0.1, 5]).
# Prints the held-out MSE per round of each (Reptile with dense and with top-400 deltas,
# FedAvg) and ends with the summary line of the Reptile run.
#
# Omniglot (--omniglot): devices holding characters of the 20 alphabets models/omniglot-lake
# never saw; held-out devices hold characters no training device has. Prints the held-out 5-way
# 1-shot accuracy per round of Reptile and FedAvg, the change from round 0 over the same
# episodes, plots the curves (target/fleet-omniglot/curve.png) and ends with the summary line of
# the Reptile run.
#
# Usage: bash fleet/run.sh [--omniglot] [--quick]
#   sine: 100 rounds (--quick: 50); omniglot: 30 rounds (--quick: 10)
# Needs: the anole Python package (pip install ./python), flwr[simulation]==1.42.0, and for
# --omniglot pillow, matplotlib and the Omniglot release (../shared/data/omniglot, or
# OMNIGLOT=folder holding images_evaluation.zip).
set -euo pipefail
cd "$(dirname "$0")"
task=sine quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        --omniglot) task=omniglot ;;
        *) echo "fleet/run.sh: unknown argument $arg (usage: bash fleet/run.sh [--omniglot] [--quick])" >&2; exit 2 ;;
    esac
done
py=${PYTHON:-python3}
if ! "$py" -c "import anole, flwr" 2>/dev/null; then
    echo "fleet/run.sh: needs the anole package and Flower: pip install ./python 'flwr[simulation]==1.42.0'" >&2
    exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ $task == sine ]]; then
    rounds=100
    [[ $quick == 1 ]] && rounds=50
    out=../target/fleet-demo
    # name, then fleet settings
    runs=("reptile strategy=reptile" "reptile-top400 strategy=reptile top-k=400" "fedavg strategy=fedavg")
else
    rounds=30
    [[ $quick == 1 ]] && rounds=10
    out=../target/fleet-omniglot
    data=${OMNIGLOT:-../../shared/data/omniglot}
    if [[ ! -f "$data/images_evaluation.zip" && ! -d "$data/images_evaluation" ]]; then
        echo "fleet/run.sh: no Omniglot release in $data (images_evaluation.zip); set OMNIGLOT=folder" >&2
        exit 1
    fi
    data=$(cd "$data" && pwd)
    common="task=omniglot omniglot-data=$data"
    runs=("reptile strategy=reptile epsilon=1.0 $common" "fedavg strategy=fedavg $common")
fi
rm -rf "$out"
mkdir -p "$out"
for run in "${runs[@]}"; do
    read -r name settings <<<"$run"
    sets=()
    for s in $settings round-timeout=600; do sets+=(--set "$s"); done
    echo "== $name: $rounds rounds, 100 devices, 10 a round ($settings)"
    "$py" -m anole_fleet.simulate --devices 100 --rounds "$rounds" --state "$out/$name" "${sets[@]}" \
        >"$out/$name.log" 2>&1 || { tail -30 "$out/$name.log" >&2; exit 1; }
done
if [[ $task == sine ]]; then
    "$py" -m anole_fleet.report "$out/reptile" "$out/reptile-top400" "$out/fedavg"
else
    "$py" -m anole_fleet.report --plot "$out/curve.png" "$out/reptile" "$out/fedavg"
fi
