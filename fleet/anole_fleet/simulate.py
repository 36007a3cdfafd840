"""Run the fleet in Flower's simulation engine on this machine.

    python -m anole_fleet.simulate --devices 100 --rounds 50 --state target/fleet/sim

Every ``--set key=value`` is a fleet setting (``fleet/pyproject.toml`` lists them).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from flwr.simulation import run_simulation

import anole

from .client import make_client_app
from .server import make_server_app, start
from .settings import Settings


def parse_sets(items):
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.replace("-", "_")] = v
    return out


def simulate(devices: int, overrides: dict, client_app=None, workers: int = 2):
    """Run the server and ``devices`` virtual devices (``client_app``, by default the honest
    one) in Flower's simulation engine; returns the state directory's last card."""
    s = Settings.from_config({}, **overrides)
    start(s)  # a model or data that do not fit stop here, with their reason, not in a round
    backend = {
        "client_resources": {"num_cpus": 1},
        # No Ray dashboard: it costs a process and startup time a simulation does not need.
        "init_args": {"num_cpus": workers, "include_dashboard": False},
    }
    run_simulation(
        server_app=make_server_app(**overrides),
        client_app=client_app or make_client_app(**overrides),
        num_supernodes=devices,
        backend_config=backend,
    )
    card = Path(s.state_dir) / "latest" / "card.json"
    if not card.exists():
        raise RuntimeError(f"the simulation wrote no round ({card} missing); see its log")
    return json.loads(card.read_text())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100, help="virtual devices (SuperNodes)")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--state", required=True, help="state directory (resumed when it exists)")
    ap.add_argument("--workers", type=int, default=2, help="devices simulated at once")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args(argv)
    overrides = {"num_server_rounds": a.rounds, "state_dir": a.state, **parse_sets(a.set)}
    try:
        card = simulate(a.devices, overrides, workers=a.workers)
    except (ValueError, OSError, RuntimeError, anole.Error) as e:
        # Bad settings, a missing model or data folder, a model that does not fit the task:
        # the reason, not a traceback.
        raise SystemExit(f"anole_fleet.simulate: {e}") from None
    h = card["history"]
    metric = "held_out_accuracy" if "held_out_accuracy" in h[0] else "held_out_mse"
    print(json.dumps({"round": card["round"], metric: [r[metric] for r in h]}))


if __name__ == "__main__":
    sys.exit(main())
