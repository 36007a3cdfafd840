#!/usr/bin/env bash
# The fleet as a deployment on this machine: a Flower SuperLink and N SuperNodes (one per
# device) as separate local processes, the app submitted with `flwr run`, its log streamed until
# the last round. The fleet key is made first (anole keygen form); every SuperNode trusts its
# public key through its node config, as a device holds it in firmware.
# Usage: bash fleet/deploy.sh [--nodes N] [--rounds R] [--state DIR] [--port P]
#   defaults: 5 nodes, 5 rounds, target/fleet-deploy; local ports P, P+1 and P+10.. (P = 19090).
# Needs: the anole Python package and flwr[simulation]==1.42.0 in python3 (or PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=5 rounds=5 state=target/fleet-deploy port=19090
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nodes) nodes=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --state) state=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        *) echo "fleet/deploy.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
py=${PYTHON:-python3}
bin=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')  # where pip put flwr's tools
for tool in flower-superlink flower-supernode flwr; do
    [[ -x "$bin/$tool" ]] || { echo "fleet/deploy.sh: $bin/$tool missing: pip install 'flwr[simulation]==1.42.0'" >&2; exit 1; }
done
export PATH="$bin:$PATH"  # the SuperLink and SuperNodes start flower-superexec and flwr-* from it
mkdir -p "$state"
state=$(cd "$state" && pwd)
home=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$home"
}
trap cleanup EXIT
# The fleet key: the server signs with the secret, devices trust the public key.
[[ -f "$state/fleet.key" ]] || "$py" -c "
import anole, os, sys
secret, public = anole.keygen()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, (secret.hex() + '\n').encode()); os.close(fd)
open(sys.argv[1] + '.pub', 'wb').write(public)" "$state/fleet.key"

export FLWR_HOME=$home
cat >"$home/config.toml" <<TOML
[superlink]
default = "fleet"

[superlink.fleet]
address = "127.0.0.1:$((port + 1))"
insecure = true
TOML
# Apps run in this Python environment: no dependency installation at run time.
"$bin/flower-superlink" --insecure --isolation subprocess --database "$home/superlink.db" \
    --disable-runtime-dependency-installation \
    --host 127.0.0.1 --port $((port + 1)) --health-server-address 127.0.0.1:$((port)) \
    >"$state/superlink.log" 2>&1 &
pids+=($!)
# Wait for the SuperLink's HTTP API (Control, Fleet and Runtime APIs on one port).
"$py" -c "
import socket, sys, time
deadline = time.time() + 60
while True:
    try:
        socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit('fleet/deploy.sh: the SuperLink did not start; see ' + sys.argv[2])
        time.sleep(0.5)" $((port + 1)) "$state/superlink.log"
for ((i = 0; i < nodes; i++)); do
    "$bin/flower-supernode" --insecure --superlink 127.0.0.1:$((port + 1)) --isolation subprocess \
        --host 127.0.0.1 --port $((port + 10 + i)) \
        --node-config "partition-id=$i fleet-key='$state/fleet.key.pub'" \
        >"$state/supernode-$i.log" 2>&1 &
    pids+=($!)
done
export PYTHONPATH="$PWD/fleet${PYTHONPATH:+:$PYTHONPATH}"
"$bin/flwr" run fleet fleet --stream --run-config "num-server-rounds=$rounds state-dir='$state' \
init='$PWD/models/sine/init.postcard' fleet-key='$state/fleet.key' min-nodes=$nodes \
clients-per-round=$nodes eval-devices=20 round-timeout=60.0"
done=$("$py" -c "
import json, sys
try:
    print(json.load(open(sys.argv[1]))['round'])
except OSError:
    print('none')" "$state/latest/card.json")
[[ "$done" == "$rounds" ]] || { echo "fleet/deploy.sh: the fleet stopped after round $done of $rounds" >&2; exit 1; }
echo "fleet deployment: $nodes SuperNodes, $rounds rounds; state in $state"
