"""The fleet's settings: the app's run configuration (``[tool.flwr.app.config]`` in
``fleet/pyproject.toml``, overridden with ``flwr run --run-config``), as one typed object."""

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .robust import AGGREGATORS
from .tasks import SineFamily

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Settings:
    """Every knob of a fleet run. Names are the run-config keys with ``-`` for ``_``."""

    #: "reptile": phi <- phi + eps * aggregate(delta), eps annealed; "fedavg": the mean of the
    #: adapted parameters (eps = 1, no annealing).
    strategy: str = "reptile"
    num_server_rounds: int = 50
    clients_per_round: int = 10
    #: Rounds with fewer accepted updates keep the initialization (and are recorded).
    min_updates: int = 2
    #: Devices that must be connected before the first round (deployment waits for them).
    min_nodes: int = 2
    epsilon: float = 2.0
    #: "linear": eps_r = epsilon * (1 - (r - 1) / num_server_rounds); "none": constant.
    anneal: str = "linear"
    aggregator: str = "mean"
    trim: float = 0.2
    #: Refuse updates whose norm exceeds norm_factor x the round's median norm (0: no bound).
    norm_factor: float = 3.0
    #: And any update above this norm (0: no absolute bound).
    max_norm: float = 0.0
    #: Devices send the top-k coordinates of their delta (0: all, dense).
    top_k: int = 0
    #: Seconds to wait for a round's replies; later replies are dropped.
    round_timeout: float = 120.0
    seed: int = 0
    init: str = str(ROOT / "models" / "sine" / "init.postcard")
    state_dir: str = str(ROOT / "target" / "fleet")
    #: Secret fleet key (64 hex characters); made in state_dir when empty.
    fleet_key: str = ""
    #: Public key devices trust (raw 32 bytes or 64 hex); state_dir/fleet.key.pub when empty.
    fleet_public_key: str = ""
    samples_per_device: int = 50
    amplitude_min: float = 5.0
    amplitude_max: float = 10.0
    eval_devices: int = 100
    eval_shots: int = 10
    eval_steps: int = 8

    @staticmethod
    def from_config(config: Mapping[str, Any], **overrides) -> "Settings":
        """Settings from a run configuration (unknown keys are errors), then ``overrides``."""
        known = {f.name: f for f in fields(Settings)}
        values = {}
        for key, value in config.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ValueError(f"unknown fleet setting {key!r}")
            values[name] = value
        values.update(overrides)
        # An empty path in the run configuration means the default.
        values = {k: v for k, v in values.items() if not (k in ("init", "state_dir") and v == "")}
        s = Settings()
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fleet setting {name!r}")
            default = getattr(s, name)
            try:
                setattr(s, name, type(default)(value))
            except (TypeError, ValueError) as e:
                raise ValueError(f"fleet setting {name}: {value!r} is not a {type(default).__name__}") from e
        s.check()
        return s

    def check(self):
        if self.strategy not in ("reptile", "fedavg"):
            raise ValueError(f"strategy {self.strategy!r}: reptile or fedavg")
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator {self.aggregator!r}: one of {', '.join(AGGREGATORS)}")
        if self.anneal not in ("linear", "none"):
            raise ValueError(f"anneal {self.anneal!r}: linear or none")
        if not 0.0 <= self.trim < 0.5:
            raise ValueError(f"trim {self.trim}: must be in [0, 0.5)")
        for name in ("num_server_rounds", "clients_per_round", "min_updates", "min_nodes",
                     "samples_per_device", "eval_shots"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1")
        if self.epsilon <= 0 or self.round_timeout <= 0:
            raise ValueError("epsilon and round-timeout must be positive")

    def epsilon_at(self, round_: int) -> float:
        """The outer step size of round ``round_`` (from 1)."""
        if self.strategy == "fedavg":
            return 1.0
        if self.anneal == "none":
            return self.epsilon
        return self.epsilon * (1.0 - (round_ - 1) / self.num_server_rounds)

    def family(self) -> SineFamily:
        return SineFamily(amplitude=(self.amplitude_min, self.amplitude_max))

    def as_dict(self):
        return {k.replace("_", "-"): v for k, v in dataclasses.asdict(self).items()}
