"""A fleet device: a Flower ``ClientApp`` that verifies the round's signed blob, adapts it on
its own samples with the blob's adaptation procedure (``anole.Learner``, the device's engine)
and answers with the f16 delta of its adapting layers. Its samples never leave it.

A device's number is its ``partition-id`` node setting (set by the simulation engine, or with
``flower-supernode --node-config "partition-id=N"``); its trusted key is the ``fleet-key`` node
setting (a public key file), else the run's ``fleet-public-key``, else the server's default.
"""

from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

import anole

from .server import read_key
from .settings import Settings


def device_number(context: Context) -> int:
    return int(context.node_config.get("partition-id", context.node_id))


def trusted_key(context: Context, s: Settings) -> bytes:
    path = context.node_config.get("fleet-key") or s.fleet_public_key or str(
        Path(s.state_dir) / "fleet.key.pub")
    return read_key(Path(str(path)))


def adapt(msg: Message, context: Context, s: Settings):
    """Verify, adapt, and return (learner, blob, round, report): the honest device's work."""
    cfg = msg.content["config"]
    round_ = int(cfg["round"])
    blob = anole.verify(bytes(cfg["blob"]), trusted_key(context, s))  # SignatureError if not
    family = s.family()
    x, y = family.training_set(blob, device_number(context), round_)
    learner = family.learner(blob)
    report = learner.adapt(x, y)  # the blob's steps, learning rate, optimizer and head start
    return learner, blob, round_, report


def reply(msg: Message, delta: bytes, report) -> Message:
    content = RecordDict({
        "update": ConfigRecord({"delta": delta}),
        "metrics": MetricRecord({
            "first-loss": float(report.first_loss),
            "last-loss": float(report.last_loss),
            "bytes": len(delta),
        }),
    })
    return Message(content, reply_to=msg)


def identify(msg: Message, context: Context) -> Message:
    """The answer to the server's handshake (a ``query`` message): which device this node is.
    The server samples and aggregates in device order, so a run does not depend on the node ids
    a deployment hands out nor on the order replies arrive in."""
    return Message(RecordDict({"device": MetricRecord({"number": device_number(context)})}),
                   reply_to=msg)


def make_client_app(**overrides) -> ClientApp:
    """A ClientApp reading its settings from the run configuration, then ``overrides``."""
    app = ClientApp()

    app.query()(identify)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        s = Settings.from_config(context.run_config, **overrides)
        learner, blob, round_, report = adapt(msg, context, s)
        top_k = int(msg.content["config"]["top-k"]) or None
        return reply(msg, learner.delta(round_, blob.fingerprint, top_k=top_k), report)

    return app


app = make_client_app()
