"""The fleet's server: a Flower ``ServerApp`` running federated Reptile with the
`ReptileStrategy`, resumable from its state directory.

State directory::

    fleet.key, fleet.key.pub      the fleet key, when the server made it
    rounds/000000/                the initialization the fleet started from
    rounds/000012/                after round 12: init.postcard, init.signed, init.onnx, card.json
    latest -> rounds/000012

A round's directory is written under a temporary name and renamed when complete, so a restart
resumes after the last complete round: a round in flight when the server stopped is run again,
and no completed round is lost.
"""

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

import anole

from . import robust
from .settings import Settings

log = logging.getLogger("flwr")


def read_key(path: Path) -> bytes:
    """32 key bytes from a key file: raw bytes, or 64 hex characters (``anole keygen``)."""
    data = path.read_bytes()
    text = data.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(data) == 32:
        return data
    raise ValueError(f"{path}: not a key: expected 32 raw bytes or 64 hex characters")


def fleet_keys(s: Settings, state: Path) -> Tuple[bytes, Path]:
    """The secret fleet key and the path of its public key, made in ``state`` when the
    settings name none (the secret as 64 hex characters, the public key as 32 raw bytes, as
    ``anole keygen`` writes them)."""
    if s.fleet_key:
        secret = read_key(Path(s.fleet_key))
        public = Path(s.fleet_public_key or s.fleet_key + ".pub")
        if read_key(public) != anole.public_key(secret):
            raise ValueError(f"{public} is not the public key of {s.fleet_key}")
        return secret, public
    secret_path, public = state / "fleet.key", state / "fleet.key.pub"
    if not secret_path.exists():
        secret, pub = anole.keygen()
        state.mkdir(parents=True, exist_ok=True)
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret.hex() + "\n")
        public.write_bytes(pub)
    return read_key(secret_path), public


class Checkpoints:
    """The rounds written to a state directory."""

    def __init__(self, state: Path):
        self.state = state
        self.rounds = state / "rounds"

    def latest(self) -> Optional[Tuple[int, bytes, dict]]:
        """(round, blob bytes, card) of the last complete round, or None."""
        if not self.rounds.is_dir():
            return None
        done = sorted(int(p.name) for p in self.rounds.iterdir() if p.name.isdigit())
        if not done:
            return None
        d = self.rounds / f"{done[-1]:06d}"
        card = json.loads((d / "card.json").read_text())
        blob = (d / "init.postcard").read_bytes()
        if anole.Blob.from_bytes(blob).fingerprint != card["fingerprint"]:
            raise ValueError(f"{d}: init.postcard does not match card.json")
        return done[-1], blob, card

    def write(self, round_: int, blob: "anole.Blob", signed: bytes, card: dict):
        """Write round ``round_``'s blob, signed envelope, ONNX and card atomically."""
        self.rounds.mkdir(parents=True, exist_ok=True)
        final = self.rounds / f"{round_:06d}"
        tmp = self.rounds / f".{round_:06d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / "init.postcard").write_bytes(blob.to_bytes())
        (tmp / "init.signed").write_bytes(signed)
        (tmp / "init.onnx").write_bytes(blob.to_onnx())
        (tmp / "card.json").write_text(json.dumps(card, indent=1) + "\n")
        for f in tmp.iterdir():
            with open(f, "rb") as h:
                os.fsync(h.fileno())
        shutil.rmtree(final, ignore_errors=True)  # a round re-run after a restart
        os.replace(tmp, final)
        link = self.state / ".latest.tmp"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("rounds") / final.name)
        os.replace(link, self.state / "latest")


class ReptileStrategy(Strategy):
    """Federated Reptile: each round, the signed blob to a sample of devices; their f16 deltas
    validated, aggregated and applied as phi <- phi + eps * aggregate(delta)."""

    def __init__(self, settings: Settings, blob: "anole.Blob", secret: bytes):
        self.s = settings
        self.set_blob(blob)
        self.secret = secret
        self.last: dict = {}
        #: node id -> device number, from each node's answer to the handshake (None: none).
        self.device_of: dict = {}

    def set_blob(self, blob: "anole.Blob"):
        self.blob = blob
        self.learner = anole.Learner(blob)
        self.coordinates = self.learner.delta_coordinates

    def summary(self) -> None:
        log.info("anole fleet: %s", json.dumps(self.s.as_dict()))

    def identify(self, grid: Grid, nodes: List[int]) -> None:
        """Ask the nodes not asked yet which device they are (a ``query`` message each)."""
        new = [n for n in nodes if n not in self.device_of]
        if not new:
            return
        asks = [Message(RecordDict(), dst_node_id=n, message_type="query", group_id="identify")
                for n in new]
        for n in new:
            self.device_of[n] = None
        for m in grid.send_and_receive(asks, timeout=self.s.round_timeout):
            if m.has_error():
                continue
            rec = m.content.get("device")
            if isinstance(rec, MetricRecord) and "number" in rec:
                self.device_of[int(m.metadata.src_node_id)] = int(rec["number"])

    def order(self, node: int):
        """A node's place: by device number, then (nodes that did not say) by node id. Node ids
        are drawn afresh by every deployment; device numbers are the fleet's own."""
        device = self.device_of.get(node)
        return (device is None, device if device is not None else 0, node)

    def sample(self, grid: Grid, round_: int) -> List[int]:
        nodes = list(grid.get_node_ids())
        self.identify(grid, nodes)
        nodes.sort(key=self.order)
        rng = np.random.default_rng([self.s.seed, round_])
        k = min(self.s.clients_per_round, len(nodes))
        # Indices, not the ids: node ids are 64-bit unsigned, beyond what numpy keeps exact.
        return [nodes[i] for i in rng.choice(len(nodes), size=k, replace=False)]

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        signed = anole.sign(self.blob, self.secret)
        cfg = ConfigRecord({
            "round": server_round,
            "blob": signed,
            "top-k": self.s.top_k,
        })
        self.last = {"sampled": self.sample(grid, server_round), "signed_bytes": len(signed)}
        return [
            Message(RecordDict({"config": cfg}), dst_node_id=n, message_type="train",
                    group_id=str(server_round))
            for n in self.last["sampled"]
        ]

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> Tuple[Optional[ArrayRecord], Optional[MetricRecord]]:
        """Validate every reply, aggregate the accepted deltas and take the outer step."""
        fp = self.blob.fingerprint
        updates, nodes, refused, uplink, losses = [], [], [], [], []
        for m in replies:
            node = int(m.metadata.src_node_id)
            if m.has_error():
                refused.append((node, f"failed: {m.error.reason}"))
                continue
            upd = m.content.get("update")
            raw = upd.get("delta") if isinstance(upd, ConfigRecord) else None
            result = robust.check(raw, server_round, fp, self.coordinates)
            if isinstance(result, str):
                refused.append((node, result))
                continue
            updates.append(result)
            nodes.append(node)
            uplink.append(len(raw))
            metrics = m.content.get("metrics")
            if isinstance(metrics, MetricRecord) and "last-loss" in metrics:
                losses.append(float(metrics["last-loss"]))
        keep, too_big = robust.norm_filter(updates, self.s.norm_factor, self.s.max_norm or None)
        refused += [(nodes[i], why) for i, why in too_big]
        answered = {n for n, _ in refused} | set(nodes)
        refused += [(n, "no reply before the round's timeout") for n in self.last["sampled"]
                    if n not in answered]
        for node, why in refused:
            log.warning("round %d: update of node %d refused: %s", server_round, node, why)
        # In device order, whatever order the replies came in: the aggregate's sums are then
        # the same in every run.
        keep = sorted(keep, key=lambda i: self.order(nodes[i]))
        accepted = [updates[i] for i in keep]
        eps = self.s.epsilon_at(server_round)
        record = {
            "round": server_round,
            "epsilon": eps,
            "sampled": len(self.last["sampled"]),
            "accepted": len(accepted),
            "refused": [{"node": n, "reason": why} for n, why in refused],
            "downlink_bytes": self.last["signed_bytes"],
            "uplink_bytes_mean": float(np.mean([uplink[i] for i in keep])) if keep else 0.0,
            "client_last_loss_mean": float(np.mean(losses)) if losses else None,
            "step_norm": 0.0,
        }
        if len(accepted) < self.s.min_updates:
            log.warning("round %d: %d accepted updates, fewer than %d: initialization kept",
                        server_round, len(accepted), self.s.min_updates)
            self.last["record"] = record
            return None, None
        how = "mean" if self.s.strategy == "fedavg" else self.s.aggregator
        step = robust.aggregate(accepted, how, self.s.trim)
        self.learner.reset()
        self.learner.apply_delta(step, scale=eps)
        self.set_blob(anole.Blob.from_bytes(self.learner.export()))
        record["step_norm"] = float(eps * np.linalg.norm(step))
        self.last["record"] = record
        return None, MetricRecord({"accepted": len(accepted), "step-norm": record["step_norm"]})

    def configure_evaluate(self, server_round, arrays, config, grid) -> Iterable[Message]:
        return []  # the held-out devices are evaluated on the server (`run`)

    def aggregate_evaluate(self, server_round, replies) -> Optional[MetricRecord]:
        return None


def card_for(s: Settings, blob: "anole.Blob", round_: int, history: list, source: dict) -> dict:
    held_out = {"task": s.task, "devices": s.eval_devices, "shots": s.eval_shots,
                "steps": s.eval_steps or int(blob.settings["steps"])}
    if s.task == "omniglot":
        held_out["ways"] = s.omniglot_ways
    return {
        "fleet": s.as_dict(),
        "round": round_,
        "fingerprint": blob.fingerprint,
        "source": source,
        "held_out": held_out,
        "history": history,
    }


def held_out_text(rec: dict) -> str:
    """A round record's held-out result, for the log."""
    if "held_out_accuracy" in rec:
        return (f"held-out accuracy {rec['held_out_accuracy']:.4f} "
                f"(95% interval ±{rec['held_out_ci95']:.4f})")
    return f"held-out MSE {rec['held_out_mse']:.5f}"


def start(s: Settings) -> Tuple["anole.Blob", object]:
    """The starting blob and the devices' data, checked against each other: a clear error
    (ValueError, FileNotFoundError, anole.Error) before any round when they do not fit."""
    blob = anole.Blob.load(s.init)
    family = s.family()
    family.check(blob, s.eval_shots)
    return blob, family


def wait_for_nodes(grid: Grid, s: Settings):
    deadline = time.monotonic() + s.round_timeout
    while len(list(grid.get_node_ids())) < s.min_nodes:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {len(list(grid.get_node_ids()))} devices connected after "
                f"{s.round_timeout} s; min-nodes is {s.min_nodes}")
        time.sleep(0.5)


def run(grid: Grid, s: Settings):
    """The server's loop: resume from the state directory, then run the remaining rounds."""
    state = Path(s.state_dir)
    secret, public = fleet_keys(s, state)
    ckpt = Checkpoints(state)
    blob, family = start(s)

    def evaluate(blob):
        return family.evaluate(blob, s.eval_devices, s.eval_shots, s.eval_steps)

    latest = ckpt.latest()
    if latest is None:
        source = {"init": s.init, "fingerprint": blob.fingerprint}
        history = [{"round": 0, **evaluate(blob), "fingerprint": blob.fingerprint}]
        ckpt.write(0, blob, anole.sign(blob, secret), card_for(s, blob, 0, history, source))
        first = 1
        log.info("fleet: starting from %s, %s", s.init, held_out_text(history[0]))
    else:
        done, raw, card = latest
        blob, history, source = anole.Blob.from_bytes(raw), card["history"], card["source"]
        first = done + 1
        log.info("fleet: resuming after round %d from %s", done, state)
    strategy = ReptileStrategy(s, blob, secret)
    strategy.summary()
    wait_for_nodes(grid, s)
    for r in range(first, s.num_server_rounds + 1):
        t0 = time.monotonic()
        replies = grid.send_and_receive(
            strategy.configure_train(r, ArrayRecord(), ConfigRecord(), grid),
            timeout=s.round_timeout)
        strategy.aggregate_train(r, replies)
        rec = strategy.last["record"]
        rec["fingerprint"] = strategy.blob.fingerprint
        rec.update(evaluate(strategy.blob))
        rec["seconds"] = time.monotonic() - t0
        history.append(rec)
        ckpt.write(r, strategy.blob, anole.sign(strategy.blob, secret),
                   card_for(s, strategy.blob, r, history, source))
        log.info("fleet round %d: %d/%d updates accepted, eps %.3f, %s",
                 r, rec["accepted"], rec["sampled"], rec["epsilon"], held_out_text(rec))
    return history


def make_server_app(**overrides) -> ServerApp:
    """A ServerApp reading its settings from the run configuration, then ``overrides``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run(grid, Settings.from_config(context.run_config, **overrides))

    return app


app = make_server_app()
