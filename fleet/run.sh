#!/usr/bin/env bash
# The fleet demonstration: federated Reptile against FedAvg on sine devices whose tasks come
# from a shifted family (amplitudes in [5, 10]; the shipped model was meta-trained on [0.1, 5]),
# in Flower's simulation engine with 100 virtual devices and 10 a round. Prints the held-out
# MSE per round of both and ends with the summary line of the Reptile run.
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
for strategy in reptile fedavg; do
    echo "== $strategy: $rounds rounds, 100 devices, 10 a round"
    "$py" -m anole_fleet.simulate --devices 100 --rounds "$rounds" --state "$out/$strategy" \
        --set strategy=$strategy --set round-timeout=600 >"$out.$strategy.log" 2>&1 || { tail -30 "$out.$strategy.log" >&2; exit 1; }
done
"$py" -m anole_fleet.report "$out/reptile" "$out/fedavg"
