"""The fleet's settings: the app's run configuration (``[tool.flwr.app.config]`` in
``fleet/pyproject.toml``, overridden with ``flwr run --run-config``), as one typed object."""

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .robust import AGGREGATORS
from .tasks import OmniglotFamily, SineFamily

ROOT = Path(__file__).resolve().parents[2]
#: Each task's starting model, when ``init`` is empty.
MODELS = {"sine": ROOT / "models" / "sine" / "init.postcard",
          "omniglot": ROOT / "models" / "omniglot-lake" / "init.postcard"}
#: Each task's held-out evaluation when eval-shots / eval-steps are 0: (shots, steps); steps 0
#: are the blob's own.
EVAL_DEFAULTS = {"sine": (10, 8), "omniglot": (1, 0)}


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
    #: The devices' data: "sine" or "omniglot" (tasks.py).
    task: str = "sine"
    #: The starting blob; empty: the task's (models/sine, models/omniglot-lake).
    init: str = ""
    state_dir: str = str(ROOT / "target" / "fleet")
    #: Secret fleet key (64 hex characters); made in state_dir when empty.
    fleet_key: str = ""
    #: Public key devices trust (raw 32 bytes or 64 hex); state_dir/fleet.key.pub when empty.
    fleet_public_key: str = ""
    samples_per_device: int = 50
    amplitude_min: float = 5.0
    amplitude_max: float = 10.0
    #: Omniglot: the folder of the release (images_evaluation.zip or images_evaluation/).
    omniglot_data: str = str(ROOT.parent / "shared" / "data" / "omniglot")
    #: Omniglot: ways of a held-out device's episode; drawings per class of a training
    #: device's round task (as many classes as the model's head has outputs); characters each
    #: device holds.
    omniglot_ways: int = 5
    omniglot_shots: int = 10
    omniglot_characters: int = 20
    #: Held-out devices, each evaluated on one task (sine: 50 grid points; omniglot: one
    #: episode, every other drawing of its characters as queries).
    eval_devices: int = 100
    #: Support samples (sine) or drawings per class (omniglot) of a held-out device; 0: the
    #: task's default (sine 10, omniglot 1).
    eval_shots: int = 0
    #: Adaptation steps of a held-out device; 0: the task's default (sine 8, omniglot the
    #: blob's own).
    eval_steps: int = 0

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
        values = {k: v for k, v in values.items()
                  if not (k in ("init", "state_dir", "omniglot_data") and v == "")}
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
        # The task's defaults, written into the settings so that cards say what ran.
        if not s.init:
            s.init = str(MODELS[s.task])
        shots, steps = EVAL_DEFAULTS[s.task]
        s.eval_shots = s.eval_shots or shots
        s.eval_steps = s.eval_steps or steps
        return s

    def check(self):
        if self.task not in MODELS:
            raise ValueError(f"task {self.task!r}: {' or '.join(MODELS)}")
        if self.strategy not in ("reptile", "fedavg"):
            raise ValueError(f"strategy {self.strategy!r}: reptile or fedavg")
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator {self.aggregator!r}: one of {', '.join(AGGREGATORS)}")
        if self.anneal not in ("linear", "none"):
            raise ValueError(f"anneal {self.anneal!r}: linear or none")
        if not 0.0 <= self.trim < 0.5:
            raise ValueError(f"trim {self.trim}: must be in [0, 0.5)")
        for name in ("num_server_rounds", "clients_per_round", "min_updates", "min_nodes",
                     "samples_per_device", "omniglot_shots", "omniglot_characters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1")
        if self.omniglot_ways < 2 or self.omniglot_characters < self.omniglot_ways:
            raise ValueError("omniglot-ways must be at least 2 and omniglot-characters at least "
                             "omniglot-ways")
        if self.eval_shots < 0 or self.eval_steps < 0:
            raise ValueError("eval-shots and eval-steps must not be negative (0: the task's)")
        if self.epsilon <= 0 or self.round_timeout <= 0:
            raise ValueError("epsilon and round-timeout must be positive")

    def epsilon_at(self, round_: int) -> float:
        """The outer step size of round ``round_`` (from 1)."""
        if self.strategy == "fedavg":
            return 1.0
        if self.anneal == "none":
            return self.epsilon
        return self.epsilon * (1.0 - (round_ - 1) / self.num_server_rounds)

    def family(self):
        """The devices' data (tasks.py): a SineFamily or an OmniglotFamily."""
        if self.task == "omniglot":
            return OmniglotFamily(data=self.omniglot_data, ways=self.omniglot_ways,
                                  shots=self.omniglot_shots, characters=self.omniglot_characters)
        return SineFamily(amplitude=(self.amplitude_min, self.amplitude_max),
                          per_device=self.samples_per_device)

    def as_dict(self):
        return {k.replace("_", "-"): v for k, v in dataclasses.asdict(self).items()}
