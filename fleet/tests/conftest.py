"""Test helpers: an in-process Flower grid whose devices are ClientApps called directly (the
server's logic without the simulation engine), and delta forgeries."""

import sys
import zlib
from pathlib import Path

import pytest
from flwr.app import Context, Error, Message, RecordDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anole_fleet.client import make_client_app  # noqa: E402


class FakeGrid:
    """A Grid over ``devices`` in-process devices: node ids ``ids`` (default 1001..), partition
    ids 0... A device in ``apps`` runs that ClientApp instead of the honest one; ``drop`` lists
    devices that never answer; ``crash_round`` makes send_and_receive raise in that round (a
    server crash); ``reverse`` returns every batch of replies in reverse order."""

    def __init__(self, devices, settings, apps=None, drop=(), crash_round=None, ids=None,
                 reverse=False):
        self.honest = make_client_app(**settings)
        self.ids = list(ids) if ids is not None else [1001 + i for i in range(devices)]
        self.device = {node: i for i, node in enumerate(self.ids)}
        self.settings = settings
        self.apps = apps or {}
        self.drop = set(drop)
        self.crash_round = crash_round
        self.reverse = reverse
        self.contexts = {}

    def get_node_ids(self):
        return list(self.ids)

    def context(self, node):
        if node not in self.contexts:
            self.contexts[node] = Context(run_id=1, node_id=node,
                                          node_config={"partition-id": self.device[node]},
                                          state=RecordDict(), run_config={})
        return self.contexts[node]

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for m in messages:
            if self.crash_round is not None and m.metadata.group_id == str(self.crash_round):
                raise KeyboardInterrupt("server stopped")
            node = m.metadata.dst_node_id
            if self.device[node] in self.drop and m.metadata.message_type != "query":
                continue  # connected (it answered the handshake), then silent
            app = self.apps.get(self.device[node], self.honest)
            try:
                replies.append(app(m, self.context(node)))
            except Exception as e:  # what the engine makes of a failing ClientApp
                replies.append(Message(Error(code=0, reason=str(e)), reply_to=m))
        return replies[::-1] if self.reverse else replies


def fix_crc(raw: bytes) -> bytes:
    """Delta bytes with their CRC-32 recomputed (a forgery that passes the CRC)."""
    body = raw[:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


@pytest.fixture(autouse=True)
def task_identity():
    """What a Flower runtime sets before a ServerApp makes messages."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
    yield


@pytest.fixture()
def settings(tmp_path):
    return dict(state_dir=str(tmp_path / "state"), num_server_rounds=3, clients_per_round=10,
                eval_devices=10, samples_per_device=20)
