"""The fleet in Flower's simulation engine (Ray, virtual SuperNodes): every round completes
with a device that fails mid-round and one that sends a stale update, each refused with its
reason."""

import json
from pathlib import Path

from flwr.clientapp import ClientApp

from anole_fleet.client import adapt, device_number, identify, reply
from anole_fleet.settings import Settings
from anole_fleet.simulate import simulate


def test_simulation_engine_with_a_dropout_and_a_stale_device(tmp_path):
    overrides = dict(num_server_rounds=2, clients_per_round=6, state_dir=str(tmp_path / "s"),
                     eval_devices=10, samples_per_device=20, round_timeout=600.0)
    s = Settings.from_config({}, **overrides)
    app = ClientApp()
    app.query()(identify)

    @app.train()
    def train(msg, context):
        device = device_number(context)
        if device == 0:
            raise RuntimeError("device lost power mid-round")
        learner, blob, round_, report = adapt(msg, context, s)
        stale = round_ - 1 if device == 1 else round_
        return reply(msg, learner.delta(stale, blob.fingerprint), report)

    card = simulate(8, overrides, client_app=app)
    assert card["round"] == 2
    h = card["history"]
    for r in h[1:]:
        assert r["sampled"] == 6
        assert r["accepted"] + len(r["refused"]) == 6
        assert r["accepted"] >= 4
        for x in r["refused"]:
            assert x["reason"].startswith("failed") or x["reason"].startswith("stale")
    reasons = " ".join(x["reason"] for r in h[1:] for x in r["refused"])
    assert "lost power" in reasons and "stale" in reasons
    assert json.loads((Path(s.state_dir) / "rounds" / "000002" / "card.json").read_text())
