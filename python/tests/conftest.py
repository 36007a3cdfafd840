"""Shared fixtures: the repository's shipped models, the `anole` CLI built from the same
sources, and sine support/query samples."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SINE = ROOT / "models" / "sine"


@pytest.fixture(scope="session")
def cli():
    """Run the `anole` binary (ANOLE_BIN, default target/release/anole); returns stdout."""
    exe = Path(os.environ.get("ANOLE_BIN", ROOT / "target" / "release" / "anole"))
    if not exe.is_file():
        pytest.fail(f"{exe}: the anole CLI is not built (cargo build --release -p anole-trainer)")

    def run(*args):
        r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, f"anole {' '.join(map(str, args))}: {r.stderr}"
        return r.stdout

    return run


@pytest.fixture(scope="session")
def sine_path():
    return SINE / "init.postcard"


@pytest.fixture()
def sine_task():
    """Ten support samples and 51 query points of y = 3.1 sin(x + 1.3), float32."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-5, 5, size=(10, 1)).astype(np.float32)
    y = (3.1 * np.sin(x + 1.3)).astype(np.float32)
    q = np.linspace(-5, 5, 51, dtype=np.float32).reshape(-1, 1)
    return x, y, q


def write_csv(path, header, rows):
    """CSV rows written with the shortest repr of each float32, which reads back exactly."""
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(repr(float(v)) for v in r) + "\n")
