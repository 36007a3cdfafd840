"""The server's rounds through an in-process grid: honest rounds improve the held-out devices;
every kind of bad update is refused with its logged reason; robust aggregates bound a
sign-flipping minority; dropouts do not stall a round; a restarted server resumes after its
last complete round and ends where an uninterrupted run ends."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

import anole
from anole_fleet import server
from anole_fleet.client import adapt, identify, reply
from anole_fleet.settings import Settings

from conftest import FakeGrid, fix_crc


def run(settings, **grid_args):
    s = Settings.from_config({}, **settings)
    grid = FakeGrid(20, settings, **grid_args)
    return server.run(grid, s)


def card(settings):
    return json.loads((Path(settings["state_dir"]) / "latest" / "card.json").read_text())


def params(settings, round_=None):
    d = Path(settings["state_dir"]) / ("latest" if round_ is None else f"rounds/{round_:06d}")
    return anole.Learner(anole.Blob.load(d / "init.postcard")).params


def attacker(kind, settings):
    """A ClientApp that adapts honestly, then sends a bad update of ``kind``."""
    app = ClientApp()
    app.query()(identify)
    s = Settings.from_config({}, **settings)

    @app.train()
    def train(msg, context):
        learner, blob, round_, report = adapt(msg, context, s)
        fp = blob.fingerprint
        if kind == "nan":
            raw = bytearray(learner.delta(round_, fp))
            raw[40:42] = (0x7E00).to_bytes(2, "little")
            return reply(msg, fix_crc(bytes(raw)), report)
        if kind == "huge":
            d = anole.Delta.from_bytes(learner.delta(round_, fp)).to_dense()
            learner.apply_delta(d, scale=200.0)
        elif kind == "sign-flipped":
            # -20 delta: caught by the norm bound when it is on (the default).
            d = anole.Delta.from_bytes(learner.delta(round_, fp)).to_dense()
            learner.apply_delta(d, scale=-21.0)
        elif kind == "stale":
            return reply(msg, learner.delta(round_ - 1, fp), report)
        elif kind == "wrong-model":
            return reply(msg, learner.delta(round_, fp ^ 1), report)
        elif kind == "wrong-shape":
            head = anole.Learner(blob, trainable="head")
            head.adapt(*s.family().samples(0, 10, seed=round_))
            return reply(msg, head.delta(round_, fp), report)
        elif kind == "garbage":
            return reply(msg, b"ANDT" + bytes(40), report)
        elif kind == "no-delta":
            return Message(RecordDict({"metrics": MetricRecord({"x": 1.0})}), reply_to=msg)
        elif kind == "dropout":
            raise RuntimeError("device lost power mid-round")
        return reply(msg, learner.delta(round_, fp), report)

    return app


def test_honest_fleet_improves_and_writes_each_round(settings):
    h = run(dict(settings, num_server_rounds=10, eval_devices=50))
    assert [r["round"] for r in h] == list(range(11))
    assert all(r["accepted"] == 10 and not r["refused"] for r in h[1:])
    assert h[-1]["held_out_mse"] < 0.8 * h[0]["held_out_mse"]
    state = Path(settings["state_dir"])
    for r in range(11):
        d = state / "rounds" / f"{r:06d}"
        blob = anole.Blob.load(d / "init.postcard")
        key = (state / "fleet.key.pub").read_bytes()
        assert anole.verify((d / "init.signed").read_bytes(), key) == blob
        assert (d / "init.onnx").read_bytes() == blob.to_onnx()
        c = json.loads((d / "card.json").read_text())
        assert c["round"] == r and c["fingerprint"] == blob.fingerprint
        assert len(c["history"]) == r + 1
    assert h[1]["uplink_bytes_mean"] == anole.delta_size(4353)
    assert h[1]["epsilon"] == 2.0 and h[10]["epsilon"] == pytest.approx(0.2)


REFUSED = {
    "nan": "unreadable delta",
    "huge": "above the bound",
    "stale": "stale",
    "wrong-model": "wrong model",
    "wrong-shape": "wrong shape",
    "garbage": "unreadable delta",
    "no-delta": "no delta",
    "dropout": "failed: ",
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_bad_updates_are_refused_with_a_logged_reason(kind, settings, tmp_path, caplog):
    settings = dict(settings, num_server_rounds=2)
    honest = dict(settings, state_dir=str(tmp_path / "honest"))
    bad_devices = set()

    class Apps(dict):
        """Every device of a round's sample past the first eight is an attacker (20%)."""

    grid_honest = FakeGrid(20, honest)
    run_ids = {}
    # Which devices round 1 and 2 sample is the same for both runs (seeded by round).
    s = Settings.from_config({}, **settings)
    strategy = server.ReptileStrategy(s, anole.Blob.load(s.init), anole.keygen()[0])
    for r in (1, 2):
        sampled = [n - 1001 for n in strategy.sample(grid_honest, r)]
        bad_devices |= set(sampled[8:])
        run_ids[r] = sampled
    app = attacker(kind, settings)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        h = run(settings, apps={d: app for d in bad_devices})
    h_honest = run(honest, drop=bad_devices)
    for r in (1, 2):
        bad = [d for d in run_ids[r] if d in bad_devices]
        assert h[r]["accepted"] == 10 - len(bad)
        reasons = [x["reason"] for x in h[r]["refused"]]
        assert len(reasons) == len(bad) and all(REFUSED[kind] in x for x in reasons), reasons
    assert REFUSED[kind] in caplog.text
    # Refused updates leave exactly the honest devices' initialization.
    np.testing.assert_array_equal(params(settings), params(honest))


@pytest.mark.parametrize("aggregator", ["median", "trimmed-mean"])
def test_robust_aggregates_bound_sign_flipped_updates(aggregator, settings, tmp_path):
    """Two of ten devices send their update negated and scaled by 20, with the norm bound off
    (so they pass every check): the plain mean moves in proportion to the attack, the median
    and the trimmed mean stay within the spread of the honest updates, less than one honest
    step from what they give on the honest devices alone."""
    settings = dict(settings, num_server_rounds=1, norm_factor=0.0)
    s = Settings.from_config({}, **settings)
    grid = FakeGrid(20, settings)
    strategy = server.ReptileStrategy(s, anole.Blob.load(s.init), anole.keygen()[0])
    bad = {n - 1001 for n in strategy.sample(grid, 1)[8:]}
    start = anole.Learner(anole.Blob.load(s.init)).params
    steps = {}
    for agg in ("mean", aggregator):
        for attack in (False, True):
            cfg = dict(settings, aggregator=agg, state_dir=str(tmp_path / f"{agg}-{attack}"))
            app = attacker("sign-flipped", cfg)
            run(cfg, apps={d: app for d in bad} if attack else {}, drop=() if attack else bad)
            steps[agg, attack] = params(cfg) - start
    off = {agg: float(np.linalg.norm(steps[agg, True] - steps[agg, False]))
           for agg in ("mean", aggregator)}
    honest = float(np.linalg.norm(steps["mean", False]))
    print(f"{aggregator}: honest step {honest:.4f}, attack moves mean by {off['mean']:.4f}, "
          f"{aggregator} by {off[aggregator]:.4f}")
    assert off["mean"] > 3 * honest  # the attack works on the plain mean
    assert off[aggregator] < honest
    assert off[aggregator] < 0.2 * off["mean"]


def test_runs_repeat_whatever_the_node_ids_and_the_reply_order(settings, tmp_path):
    """Devices are sampled and aggregated in device order (each node says its device in a
    handshake), so a deployment's node ids and the order replies arrive in change no bit."""
    first = dict(settings, state_dir=str(tmp_path / "a"))
    run(first)
    second = dict(settings, state_dir=str(tmp_path / "b"))
    rng = np.random.default_rng(7)
    ids = [int(x) for x in rng.choice(2**62, size=20, replace=False)]
    run(second, ids=ids, reverse=True)
    assert np.array_equal(params(first), params(second))

    def mse(settings):
        return [r["held_out_mse"] for r in card(settings)["history"]]

    assert mse(first) == mse(second)


def test_dropouts_do_not_stall_a_round(settings):
    settings = dict(settings, num_server_rounds=2)
    h = run(settings, drop=set(range(0, 20, 3)))
    for r in h[1:]:
        assert 0 < r["accepted"] < 10
        assert all(x["reason"] == "no reply before the round's timeout" for x in r["refused"])
        assert r["accepted"] + len(r["refused"]) == 10
    # Too few answers: the initialization is kept and the round recorded.
    settings = dict(settings, state_dir=settings["state_dir"] + "-few", min_updates=11)
    h = run(settings)
    assert [r["accepted"] for r in h[1:]] == [10, 10]
    assert h[1]["step_norm"] == 0.0 and h[1]["fingerprint"] == h[0]["fingerprint"]


def test_restart_resumes_without_losing_a_round(settings, tmp_path):
    full = dict(settings, num_server_rounds=5, state_dir=str(tmp_path / "full"))
    h_full = run(full)
    cut = dict(full, state_dir=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        run(cut, crash_round=4)  # stops mid-round 4
    assert card(cut)["round"] == 3
    h = run(cut)  # restarted: rounds 4 and 5
    assert [r["round"] for r in h] == list(range(6))
    for a, b in zip(h, h_full):
        assert a["fingerprint"] == b["fingerprint"]
        assert a["held_out_mse"] == b["held_out_mse"]
    np.testing.assert_array_equal(params(cut), params(full))
    # A finished run restarted does nothing more.
    assert len(run(cut)) == 6


def test_devices_refuse_a_blob_not_signed_by_the_fleet_key(settings, tmp_path):
    s = Settings.from_config({}, **settings)
    grid = FakeGrid(20, settings)
    strategy = server.ReptileStrategy(s, anole.Blob.load(s.init), anole.keygen()[0])
    server.fleet_keys(s, Path(s.state_dir))  # the devices trust this key, not the one above
    replies = grid.send_and_receive(strategy.configure_train(1, None, ConfigRecord(), grid))
    assert len(replies) == 10 and all(m.has_error() for m in replies)
    assert "signed by key id" in replies[0].error.reason
    strategy.aggregate_train(1, replies)
    assert strategy.last["record"]["accepted"] == 0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown fleet setting"):
        Settings.from_config({"epsilonn": 1})
    with pytest.raises(ValueError, match="aggregator"):
        Settings.from_config({"aggregator": "krum"})
    with pytest.raises(ValueError, match="not a int"):
        Settings.from_config({"num-server-rounds": "x"})
