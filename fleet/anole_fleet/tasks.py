"""The devices' data: sine regression tasks from a shifted family.

Every device holds one task, y = a sin(x + p), drawn from its device number; each round it
collects fresh samples of it. Held-out devices (numbers from ``HELD_OUT``) never take part in
training and measure how well an initialization adapts.
"""

from dataclasses import dataclass

import numpy as np

#: Device numbers from here on are held out of training.
HELD_OUT = 1_000_000


@dataclass(frozen=True)
class SineFamily:
    """Tasks y = a sin(x + p), a in ``amplitude``, p in ``phase``, x in ``inputs``."""

    amplitude: tuple = (5.0, 10.0)
    phase: tuple = (0.0, float(np.pi))
    inputs: tuple = (-5.0, 5.0)

    def task(self, device: int):
        """Device ``device``'s (amplitude, phase)."""
        rng = np.random.default_rng([device, 0x51E])
        return rng.uniform(*self.amplitude), rng.uniform(*self.phase)

    def samples(self, device: int, n: int, seed: int):
        """``n`` random samples of the device's task: float32 ``(n, 1)`` inputs and targets."""
        a, p = self.task(device)
        rng = np.random.default_rng([device, seed, 0xDA7A])
        x = rng.uniform(*self.inputs, size=(n, 1)).astype(np.float32)
        return x, (a * np.sin(x + p)).astype(np.float32)

    def grid(self, device: int, n: int = 50):
        """The task on ``n`` evenly spaced inputs (the query set of an evaluation)."""
        a, p = self.task(device)
        x = np.linspace(*self.inputs, n, dtype=np.float32)[:, None]
        return x, (a * np.sin(x + p)).astype(np.float32)


def held_out_mse(blob, family: SineFamily, devices: int, shots: int, steps: int) -> float:
    """Mean query MSE of ``devices`` held-out devices after adapting ``blob`` for ``steps``
    SGD steps (the blob's learning rate) on ``shots`` samples each."""
    import anole

    losses = []
    for d in range(HELD_OUT, HELD_OUT + devices):
        x, y = family.samples(d, shots, seed=0)
        qx, qy = family.grid(d)
        learner = anole.Learner(blob)
        try:
            learner.adapt(x, y, steps=steps)
        except anole.DivergedError:
            pass  # the learner keeps its last good step: its loss is what the device sees
        losses.append(learner.loss(qx, qy))
    return float(np.mean(losses))
