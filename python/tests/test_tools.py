"""ONNX import, signing and training: the trainer's own functions, the same bytes as the CLI."""

import zlib
from pathlib import Path

import numpy as np
import pytest

import anole

F32 = np.float32


def gemm_classifier(ways=3, features=4, seed=0):
    """A one-layer classifier (a Gemm) as ONNX bytes, built with the onnx package."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(ways, features)).astype(F32)
    b = rng.normal(size=ways).astype(F32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", ways])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


def test_import_onnx_is_anole_import(cli, sine_path, tmp_path):
    onnx = sine_path.parent / "init.onnx"
    cli("import", onnx, "--out", tmp_path / "a.postcard", "--dtype", "f16", "--steps", 9)
    blob = anole.import_onnx(onnx, dtype="f16", steps=9)
    assert blob.to_bytes() == (tmp_path / "a.postcard").read_bytes()
    assert blob.settings["steps"] == 9 and blob.dtypes == ["f16"]
    assert anole.import_onnx(onnx.read_bytes()) == anole.import_onnx(str(onnx))


def test_import_onnx_errors(sine_path):
    with pytest.raises(anole.OnnxError, match="ONNX model"):
        anole.import_onnx(b"\x08\x07garbage")
    with pytest.raises(anole.SettingsError, match="expected one of mse, xent"):
        anole.import_onnx(sine_path.parent / "init.onnx", loss="l1")
    with pytest.raises(anole.BlobError, match="cannot read"):
        anole.import_onnx("no/such/model.onnx")
    with pytest.raises(anole.DTypeError):
        anole.import_onnx(3.5)


def test_prototype_head_and_classify():
    blob = anole.import_onnx(gemm_classifier(), loss="xent", batch=6, steps=3, lr=0.1)
    assert blob.settings["loss"] == "xent" and blob.output_shape == (3,)
    rng = np.random.default_rng(1)
    centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], F32)
    labels = np.repeat(np.arange(3), 2)
    x = (centers[labels] + 0.1 * rng.normal(size=(6, 4))).astype(F32)
    learner = anole.Learner(blob)
    learner.init_prototypes(x, labels)
    q = (centers + 0.2).astype(F32)
    assert learner.classify(q).tolist() == [0, 1, 2]
    assert learner.classify(q).dtype == np.int64
    assert learner.predict(q).argmax(axis=1).tolist() == [0, 1, 2]
    # From the imported head instead of the prototypes: adapting lowers the support loss.
    fresh = anole.Learner(blob)
    before = fresh.loss(x, labels)
    fresh.adapt(x, labels.astype(np.int32))
    assert fresh.loss(x, labels.astype(F32)) < before
    with pytest.raises(anole.SampleError) as e:
        learner.adapt(x, np.array([0, 1, 2, 0, 1, 3]))
    assert e.value.kind == "BadLabel"
    with pytest.raises(anole.SampleError, match="not a class index"):
        learner.adapt(x, np.array([0, 1, 2, 0, 1, -1]))
    with pytest.raises(anole.SampleError) as e:
        learner.init_prototypes(x[:4], labels[:4])  # class 2 has no sample
    assert e.value.kind == "MissingClass"


def test_head_start_recorded_in_the_blob():
    """A version-2 blob whose head starts from prototypes: `adapt` starts it there on a fresh
    learner (the same parameters as `init_prototypes`), `start_head` on request; a blob that
    says meta keeps its head."""
    blob = anole.import_onnx(gemm_classifier(), loss="xent", batch=6, steps=3, lr=0.1)
    assert blob.settings["head_start"] == "meta"
    raw = blob.to_bytes()[:-4]
    assert raw[4] == 1  # format version 1: nothing needs version 2
    at = raw.index(b"\x06import")  # the provenance, right after the settings
    v2 = raw[:4] + b"\x02" + raw[5:at] + b"\x01" + raw[at:]
    proto = anole.Blob.from_bytes(v2 + zlib.crc32(v2).to_bytes(4, "little"))
    assert proto.settings["head_start"] == "prototypes"
    rng = np.random.default_rng(2)
    centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], F32)
    labels = np.repeat(np.arange(3), 2)
    x = (centers[labels] + 0.1 * rng.normal(size=(6, 4))).astype(F32)
    learner = anole.Learner(proto)
    assert learner.head_start == "prototypes"
    learner.adapt(x, labels, steps=0)
    by_hand = anole.Learner(proto)
    by_hand.init_prototypes(x, labels)
    assert np.array_equal(learner.params, by_hand.params)
    assert learner.classify(centers).tolist() == [0, 1, 2]
    started = anole.Learner(proto)
    started.start_head(x, labels)
    assert np.array_equal(started.params, by_hand.params)
    meta = anole.Learner(blob)
    assert meta.head_start == "meta"
    meta.start_head(x, labels)
    assert np.array_equal(meta.params, anole.Learner(blob).params)
    bad = v2[:at] + b"\x07" + v2[at + 1:]
    with pytest.raises(anole.BlobError) as e:
        anole.Blob.from_bytes(bad + zlib.crc32(bad).to_bytes(4, "little"))
    assert e.value.kind == "BadHeadStart"


def test_sign_verify(cli, sine_path, tmp_path):
    secret, public = anole.keygen()
    assert len(secret) == 32 and anole.public_key(secret) == public
    blob = anole.Blob.load(sine_path)
    envelope = anole.sign(blob, secret)
    assert anole.sign(sine_path, secret) == envelope == anole.sign(blob.to_bytes(), secret)
    assert anole.verify(envelope, public) == blob
    (tmp_path / "init.signed").write_bytes(envelope)
    (tmp_path / "key").write_text(secret.hex() + "\n")
    (tmp_path / "key.pub").write_bytes(public)
    assert anole.Blob.load(tmp_path / "init.signed", public_key=public) == blob
    # The CLI writes the same envelope with the same key, and accepts this one.
    cli("sign", "--in", sine_path, "--key", tmp_path / "key", "--out", tmp_path / "cli.signed")
    assert (tmp_path / "cli.signed").read_bytes() == envelope
    cli("verify", "--in", tmp_path / "init.signed", "--pubkey", tmp_path / "key.pub")

    _, other = anole.keygen()
    with pytest.raises(anole.SignatureError) as e:
        anole.verify(envelope, other)
    assert e.value.kind == "UnknownKey"
    tampered = bytearray(envelope)
    tampered[100] ^= 1
    with pytest.raises(anole.SignatureError) as e:
        anole.verify(bytes(tampered), public)
    assert e.value.kind == "BadSignature"
    with pytest.raises(anole.SignatureError) as e:
        anole.verify(blob.to_bytes(), public)
    assert e.value.kind == "Unsigned"
    with pytest.raises(anole.SignatureError) as e:
        anole.verify(envelope[:-10], public)
    assert e.value.kind == "EnvelopeLength"
    with pytest.raises(anole.SignatureError, match="32 bytes"):
        anole.verify(envelope, public[:31])
    with pytest.raises(anole.SignatureError, match="already signed"):
        anole.sign(envelope, secret)


def test_train_sine_is_anole_train(cli, tmp_path):
    blob = anole.train("sine", tmp_path / "py", iters=40, seed=3, eval_tasks=4)
    cli("train", "sine", "--out", tmp_path / "cli", "--iters", 40, "--seed", 3, "--eval-tasks", 4)
    assert blob.to_bytes() == (tmp_path / "cli" / "init.postcard").read_bytes()
    assert blob.provenance["meta_iterations"] == 40 and blob.provenance["seed"] == 3


def test_optimizer_state_and_images(cli):
    """The shipped Omniglot model (Adam, 1x28x28 inputs) and the Adam state its run kept."""
    root = Path(__file__).resolve().parents[2] / "models" / "omniglot-5way"
    blob = anole.Blob.load(root / "init.postcard")
    assert blob.input_shape == (1, 28, 28) and blob.output_shape == (5,)
    rng = np.random.default_rng(0)
    x = (rng.random((5, 1, 28, 28)) > 0.8).astype(F32)
    labels = np.arange(5)
    learner = anole.Learner(blob)
    adam = anole.Blob.load(root / "init.adam.postcard")
    learner.load_optimizer_state(adam)
    steps, state = learner.optimizer_state
    assert steps == adam.provenance["meta_iterations"] and state.size > 0 and (state >= 0).all()
    twin = anole.Learner(blob)
    twin.set_optimizer_state(steps, state)
    assert twin.export_optimizer_state() == learner.export_optimizer_state()
    learner.adapt(x, labels, steps=2)
    twin.adapt(x.reshape(5, -1), labels.astype(F32), steps=2)  # flat rows: the same samples
    assert learner.export() == twin.export()
    assert learner.optimizer_state[0] == steps + 2
    assert learner.classify(x).shape == (5,)
    with pytest.raises(anole.NonFiniteError) as e:
        twin.set_optimizer_state(steps, -state)
    assert e.value.kind == "BadOptimizerState"
    with pytest.raises(anole.SettingsError) as e:
        twin.load_optimizer_state(blob)
    assert e.value.kind == "NotOptimizerState"
    with pytest.raises(anole.ShapeError, match=r"\(n, 784\) or \(n, 1, 28, 28\)"):
        learner.predict(np.zeros((2, 28, 28), F32))


def test_train_errors(tmp_path):
    with pytest.raises(anole.TrainError, match="unrecognized subcommand|invalid"):
        anole.train("cosine", tmp_path)
    with pytest.raises(anole.TrainError, match="--no-such-flag"):
        anole.train("sine", tmp_path, no_such_flag=1)
    with pytest.raises(anole.TrainError, match="--iters"):
        anole.train("sine", tmp_path, iters="many")
