#!/usr/bin/env bash
# The fleet demonstration: federated Reptile against FedAvg on sine devices whose tasks come
# from a shifted family (amplitudes in [5, 10]; the shipped model was meta-trained on [0.1, 5]),
# in Flower's simulation engine with 100 virtual devices and 10 a round. Prints the held-out
# MSE per round of each (Reptile with dense and with top-400 deltas, FedAvg) and ends with the
# summary line of the Reptile run.
# Usage: bash fleet/run.sh [--quick]      (--quick: 50 rounds; default 100)
# Needs: the anole Python package (pip install ./python) and flwr[simulation]==1.42.0.
set -euo pipefail
cd "$(dirname "$0")"
rounds=100
[[ "${1:-}" == "--quick" ]] && rounds=50
py=${PYTHON:-python3}
if ! "$py" -c "import anole, flwr" 2>/dev/null; then
    echo "fleet/run.sh: needs the anole package and Flower: pip install ./python 'flwr[simulation]==1.42.0'" >&2
    exit 1
fi
out=../target/fleet-demo
rm -rf "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
# name, then fleet settings
runs=("reptile strategy=reptile" "reptile-top400 strategy=reptile top-k=400" "fedavg strategy=fedavg")
for run in "${runs[@]}"; do
    read -r name settings <<<"$run"
    sets=()
    for s in $settings round-timeout=600; do sets+=(--set "$s"); done
    echo "== $name: $rounds rounds, 100 devices, 10 a round ($settings)"
    "$py" -m anole_fleet.simulate --devices 100 --rounds "$rounds" --state "$out/$name" "${sets[@]}" \
        >"$out/$name.log" 2>&1 || { tail -30 "$out/$name.log" >&2; exit 1; }
done
"$py" -m anole_fleet.report "$out/reptile" "$out/reptile-top400" "$out/fedavg"
