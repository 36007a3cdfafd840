"""The Omniglot task family at a tiny size: a made-up release of two alphabets (characters
drawn as random strokes, each drawing shifted by a few pixels), the shipped
`models/omniglot-lake` with its head cut to 4 classes, two rounds of four devices through the
in-process grid; and the clear errors of a missing data folder, a model that does not fit and
too few characters."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import anole
from anole_fleet import server
from anole_fleet.settings import MODELS, Settings
from anole_fleet.simulate import main as simulate_main
from anole_fleet.tasks import HELD_OUT, OmniglotFamily, narrow_head, split_characters

from conftest import FakeGrid


def make_release(root: Path, alphabets=2, characters=6, drawings=4):
    """``root/images_evaluation/<alphabet>/<character>/<drawing>.png``: 105x105 1-bit PNGs,
    black strokes on white, the character's strokes shifted by up to 3 pixels per drawing."""
    rng = np.random.default_rng(5)
    for a in range(alphabets):
        for c in range(characters):
            strokes = [(rng.integers(10, 80), rng.integers(10, 80), rng.integers(4, 12),
                        rng.integers(15, 40), rng.integers(2)) for _ in range(3)]
            folder = root / "images_evaluation" / f"Alphabet_{a}" / f"character{c + 1:02d}"
            folder.mkdir(parents=True)
            for d in range(drawings):
                page = np.ones((105, 105), dtype=bool)
                dy, dx = rng.integers(-3, 4, size=2)
                for y, x, thick, length, vertical in strokes:
                    h, w = (length, thick) if vertical else (thick, length)
                    page[y + dy:y + dy + h, x + dx:x + dx + w] = False
                Image.fromarray(page).save(folder / f"{a:02d}{c:02d}_{d + 1:02d}.png")
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("omniglot"))


@pytest.fixture(scope="module")
def lake():
    return anole.Blob.load(MODELS["omniglot"])


@pytest.fixture(scope="module")
def four_way(lake, tmp_path_factory):
    """models/omniglot-lake cut to 4 classes: the made-up alphabets have 4 training characters
    each, and training devices' tasks have as many classes as the head."""
    path = tmp_path_factory.mktemp("model") / "init.postcard"
    path.write_bytes(narrow_head(lake, 4).to_bytes())
    return path


def omniglot(release, init, tmp_path, **more):
    return {**dict(task="omniglot", omniglot_data=str(release), init=str(init),
                   omniglot_ways=2, omniglot_shots=2, omniglot_characters=6,
                   state_dir=str(tmp_path / "state"), num_server_rounds=2, clients_per_round=3,
                   eval_devices=4, eval_steps=10, epsilon=1.0), **more}


def test_narrow_head_keeps_the_body_and_the_procedure(lake):
    five = narrow_head(lake, 5)
    assert five.output_shape == (5,) and five.settings == lake.settings
    assert five.param_count == lake.param_count - 15 * (256 + 1)
    full, cut = anole.Learner(lake).params, anole.Learner(five).params
    body = lake.param_count - 20 * 257
    np.testing.assert_array_equal(cut[:body], full[:body])
    np.testing.assert_array_equal(cut[body:body + 5 * 256], full[body:body + 5 * 256])  # W rows
    np.testing.assert_array_equal(cut[-5:], full[-20:-15])  # biases
    with pytest.raises(ValueError, match="dense classifier head started from prototypes"):
        narrow_head(anole.Blob.load(MODELS["sine"]), 1)


def test_devices_hold_new_characters_and_held_out_ones_no_training_device_has(release, lake):
    family = OmniglotFamily(data=str(release), ways=2, shots=2, characters=6)
    split = split_characters(str(release.resolve()))
    assert {a: (len(t), len(h)) for a, (t, h) in split.items()} == {
        "Alphabet_0": (4, 2), "Alphabet_1": (4, 2)}
    training = {name for d in range(8) for name, _ in family.holding(d)}
    held = {name for d in range(HELD_OUT, HELD_OUT + 4) for name, _ in family.holding(d)}
    assert len(training) == 8 and len(held) == 4 and not training & held
    assert all(n.startswith("Alphabet_1/") for n, _ in family.holding(HELD_OUT + 1))
    four = narrow_head(lake, 4)
    x, y = family.training_set(four, 1, round_=1)
    assert x.shape == (4 * 2, 1, 28, 28) and x.dtype == np.float32
    assert sorted(y) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert not np.array_equal(x, family.training_set(four, 1, round_=2)[0])


def test_two_omniglot_rounds_record_the_held_out_accuracy(release, four_way, tmp_path):
    settings = omniglot(release, four_way, tmp_path)
    s = Settings.from_config({}, **settings)
    h = server.run(FakeGrid(4, settings), s)
    assert [r["round"] for r in h] == [0, 1, 2]
    for r in h:
        assert len(r["held_out_episodes"]) == 4
        assert r["held_out_accuracy"] == pytest.approx(np.mean(r["held_out_episodes"]))
        assert r["held_out_ci95"] >= 0
    # Distinct strokes, one drawing each: far above the 50% of chance.
    assert h[0]["held_out_accuracy"] >= 0.8
    blob = anole.Blob.load(s.init)
    for r in h[1:]:
        assert r["accepted"] == 3 and not r["refused"]
        assert r["uplink_bytes_mean"] == anole.delta_size(blob.param_count)
        assert r["step_norm"] > 0
    card = json.loads((Path(s.state_dir) / "latest" / "card.json").read_text())
    assert card["held_out"] == {"task": "omniglot", "devices": 4, "shots": 1, "steps": 10,
                                "ways": 2}


def test_bad_omniglot_input_is_a_clear_error(release, four_way, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds neither images_evaluation.zip"):
        server.start(Settings.from_config({}, task="omniglot", omniglot_data=str(tmp_path)))
    with pytest.raises(SystemExit, match="anole_fleet.simulate: Omniglot data: .* holds neither"):
        simulate_main(["--state", str(tmp_path / "s"), "--set", "task=omniglot",
                       "--set", f"omniglot-data={tmp_path}"])
    with pytest.raises(ValueError, match="needs a classifier of 1x28x28 images"):
        server.start(Settings.from_config({}, **omniglot(release, MODELS["sine"], tmp_path)))
    with pytest.raises(ValueError, match="hold 6 characters, fewer than the model's 20 classes"):
        server.start(Settings.from_config({}, **omniglot(release, MODELS["omniglot"], tmp_path)))
    with pytest.raises(ValueError, match="2 held-out characters, fewer than ways = 3"):
        server.start(Settings.from_config({}, **omniglot(release, four_way, tmp_path,
                                                         omniglot_ways=3)))
    with pytest.raises(ValueError, match="drawings, fewer than the 5"):
        server.start(Settings.from_config({}, **omniglot(release, four_way, tmp_path,
                                                         omniglot_shots=5)))
    broken = tmp_path / "broken"
    (broken / "images_evaluation" / "A" / "c").mkdir(parents=True)
    (broken / "images_evaluation" / "A" / "c" / "1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="1.png: not a readable image"):
        server.start(Settings.from_config({}, task="omniglot", omniglot_data=str(broken)))
