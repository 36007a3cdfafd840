"""Blob and Learner: the same bits as the `anole` CLI, and every method's contract."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import anole
from conftest import write_csv


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_blob_fields_are_anole_inspect(cli, sine_path):
    blob = anole.Blob.load(sine_path)
    want = json.loads(cli("inspect", "--json", "--batch", 25, sine_path))
    assert blob.inspect(batch=25) == want
    info = blob.inspect()
    assert blob.layers == info["layers"]
    assert blob.settings == info["settings"]
    assert blob.provenance == info["provenance"]
    assert blob.dtypes == info["dtypes"]
    assert blob.param_count == info["params"] == 4353
    assert blob.flash_bytes == info["flash_bytes"] == sine_path.stat().st_size == len(blob)
    assert blob.input_shape == (1,) and blob.output_shape == (1,) and blob.target_len == 1
    arenas = {(a["mode"], a["batch"], a["for"].startswith("adapt")): a["f32"] for a in info["arena"]}
    for (mode, batch, adapt), f32 in arenas.items():
        assert blob.arena_len(batch=batch, mode=mode, adapt=adapt) == f32
    assert anole.Blob.from_bytes(sine_path.read_bytes()) == blob
    assert blob.to_bytes() == sine_path.read_bytes()
    assert "4353 parameters" in repr(blob)


def test_to_onnx_is_the_shipped_onnx(sine_path):
    assert anole.Blob.load(sine_path).to_onnx() == (sine_path.parent / "init.onnx").read_bytes()


@pytest.mark.parametrize("mode", ["buffered", "device"])
def test_adapt_is_bit_identical_to_anole_adapt(cli, sine_path, sine_task, tmp_path, mode):
    x, y, q = sine_task
    write_csv(tmp_path / "support.csv", ["x", "y"], np.hstack([x, y]))
    write_csv(tmp_path / "query.csv", ["x"], q)
    out = cli("adapt", "--model", sine_path, "--support", tmp_path / "support.csv",
              "--query", tmp_path / "query.csv", "--out", tmp_path / "adapted.postcard",
              "--onnx", tmp_path / "adapted.onnx")
    lines = out.split()
    assert lines[0] == "y"
    cli_pred = np.array([np.float32(v) for v in lines[1:]], dtype=np.float32)

    learner = anole.Learner(anole.Blob.load(sine_path), mode=mode)
    report = learner.adapt(x, y)
    assert report.steps == learner.blob.settings["steps"] == learner.steps_taken
    assert report.last_loss < report.first_loss
    pred = learner.predict(q)
    assert pred.shape == (51, 1) and pred.dtype == np.float32
    assert np.array_equal(bits(pred[:, 0]), bits(cli_pred))
    adapted = learner.export()
    assert adapted == (tmp_path / "adapted.postcard").read_bytes()
    assert anole.Blob.from_bytes(adapted).to_onnx() == (tmp_path / "adapted.onnx").read_bytes()


def test_steps_lr_and_trainable_match_the_cli(cli, sine_path, sine_task, tmp_path):
    x, y, q = sine_task
    write_csv(tmp_path / "support.csv", ["x", "y"], np.hstack([x, y]))
    write_csv(tmp_path / "query.csv", ["x"], q)
    cli("adapt", "--model", sine_path, "--support", tmp_path / "support.csv",
        "--query", tmp_path / "query.csv", "--out", tmp_path / "head.postcard",
        "--steps", 7, "--lr", 0.05, "--adapt", "head")
    learner = anole.Learner(anole.Blob.load(sine_path), lr=0.05, trainable="head")
    learner.adapt(x, y, steps=7)
    assert learner.export() == (tmp_path / "head.postcard").read_bytes()


def test_trainable_masks(sine_path, sine_task):
    x, y, _ = sine_task
    blob = anole.Blob.load(sine_path)
    start = anole.Learner(blob).params
    head = anole.Learner(blob, trainable="head")
    head.adapt(x, y)
    changed = head.params != start
    # The last dense layer (64 weights and a bias) is the only one that moves.
    assert not changed[:-65].any() and changed[-65:].any()
    assert head.trainable == anole.Learner(blob, trainable=[4]).trainable == 1 << 4
    assert anole.Learner(blob, trainable="all").trainable == anole.Learner(blob).trainable
    none = anole.Learner(blob, trainable=0)
    none.adapt(x, y)
    assert np.array_equal(none.params, start)


def test_step_loss_gradient(sine_path, sine_task):
    x, y, _ = sine_task
    learner = anole.Learner(anole.Blob.load(sine_path))
    p0 = learner.params
    loss, grad = learner.gradient(x, y)
    assert np.array_equal(learner.params, p0), "gradient() does not update"
    assert grad.shape == p0.shape and np.abs(grad).sum() > 0
    assert loss == pytest.approx(learner.loss(x, y), rel=1e-6)
    assert learner.step(x, y) == loss
    assert learner.steps_taken == 1
    # SGD at the blob's lr (the sine blob scales no layer's lr): p1 = p0 - lr * g.
    assert learner.blob.settings["lr_scale"] in ([], [1.0] * 5) or all(
        s == 1.0 for s in learner.blob.settings["lr_scale"])
    expect = p0 - np.float32(learner.lr) * grad
    assert np.array_equal(bits(learner.params), bits(expect))
    learner.step(x, y, lr=0.0)
    assert np.array_equal(bits(learner.params), bits(expect)), "lr 0 changes nothing"
    assert learner.loss(x, y) < loss


def test_adapt_equals_its_steps(sine_path, sine_task):
    x, y, _ = sine_task
    blob = anole.Blob.load(sine_path)
    a, b = anole.Learner(blob), anole.Learner(blob)
    a.adapt(x, y, steps=5)
    for _ in range(5):
        b.step(x, y)
    assert np.array_equal(bits(a.params), bits(b.params))


def test_params_reset_export_clone(sine_path, sine_task):
    x, y, q = sine_task
    blob = anole.Blob.load(sine_path)
    learner = anole.Learner(blob)
    assert learner.export() == blob.to_bytes(), "unadapted export is the blob"
    p0 = learner.params
    learner.adapt(x, y)
    twin = learner.clone()
    assert np.array_equal(bits(twin.predict(q)), bits(learner.predict(q)))
    adapted = learner.params
    learner.reset()
    assert np.array_equal(learner.params, p0) and learner.steps_taken == 0
    assert np.array_equal(twin.params, adapted), "a clone is independent"
    learner.params = adapted
    assert np.array_equal(bits(learner.predict(q)), bits(twin.predict(q)))
    assert learner.export() == twin.export()


def test_lr_property(sine_path):
    learner = anole.Learner(anole.Blob.load(sine_path))
    learner.lr = 0.125
    assert learner.lr == 0.125
    with pytest.raises(anole.SettingsError, match="learning rate"):
        learner.lr = -1.0


def test_optimizer_state_sgd_is_empty(sine_path, sine_task):
    x, y, _ = sine_task
    learner = anole.Learner(anole.Blob.load(sine_path))
    learner.adapt(x, y, steps=3)
    steps, state = learner.optimizer_state
    assert steps == 3 and state.shape == (0,)
    exported = anole.Blob.from_bytes(learner.export_optimizer_state())
    assert exported.provenance["algorithm"] != learner.blob.provenance["algorithm"]
    with pytest.raises(anole.ShapeError):
        learner.load_optimizer_state(exported)


def test_device_mode_is_smaller(sine_path):
    blob = anole.Blob.load(sine_path)
    dev, buf = anole.Learner(blob, mode="device"), anole.Learner(blob)
    assert dev.mode == "device" and buf.mode == "buffered"
    assert dev.arena_len == blob.arena_len(mode="device") < buf.arena_len
    with pytest.raises(anole.SettingsError, match="Buffered"):
        dev.gradient(np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32))


def test_threads_share_a_blob_and_release_the_gil(sine_path, sine_task):
    x, y, q = sine_task
    blob = anole.Blob.load(sine_path)
    rng = np.random.default_rng(0)
    tasks = [(rng.uniform(0.1, 5), rng.uniform(0, np.pi)) for _ in range(16)]

    def device(task):
        a, b = task
        learner = anole.Learner(blob)
        learner.adapt(x, (a * np.sin(x + b)).astype(np.float32))
        return learner.predict(q)

    sequential = [device(t) for t in tasks]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(device, tasks))
    for s, t in zip(sequential, threaded):
        assert np.array_equal(bits(s), bits(t))

    # Another thread runs Python code while one is inside adapt(): it finds the learner
    # borrowed (a RuntimeError, not a crash), which it could never see if adapt() held the GIL.
    long = anole.Learner(blob)
    t = threading.Thread(target=lambda: long.adapt(x, y, steps=30_000))
    t.start()
    seen_busy = False
    while t.is_alive() and not seen_busy:
        try:
            long.steps_taken
        except RuntimeError:
            seen_busy = True
    t.join()
    assert seen_busy
    assert long.steps_taken == 30_000
