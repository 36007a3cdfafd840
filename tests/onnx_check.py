#!/usr/bin/env python3
"""Check ONNX files exported by anole with the ONNX reference checker and run them in
onnxruntime, comparing with the outputs the anole runtime computed.

Usage: onnx_check.py DIR, where DIR/cases.json lists cases written by the Rust test
`onnx_python.rs`: {"tolerance": t, "cases": [{"name", "model", "runs": [{"shape", "input",
"expected"}]}]}, models relative to DIR.

Installs onnx, onnxruntime and numpy with pip when they are missing. Exit status: 0 all
passed, 1 a check failed, 77 the packages are missing and pip is not available.
"""

import importlib
import json
import pathlib
import subprocess
import sys

UNAVAILABLE = 77
PACKAGES = [("onnx", "onnx>=1.15"), ("onnxruntime", "onnxruntime>=1.17"), ("numpy", "numpy")]


def ensure_packages(packages=PACKAGES):
    """Import check of `packages` ((module, pip requirement) pairs), installing the missing ones
    with pip; exits with UNAVAILABLE when pip is not there."""
    missing = []
    for module, requirement in packages:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(requirement)
    if not missing:
        return
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        print(f"pip is not available to install {', '.join(missing)}", file=sys.stderr)
        sys.exit(UNAVAILABLE)
    print(f"installing {', '.join(missing)} with pip", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *missing]
    if subprocess.run(cmd).returncode != 0:
        print("pip install failed", file=sys.stderr)
        sys.exit(1)
    importlib.invalidate_caches()


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_packages()
    import numpy as np
    import onnx
    import onnxruntime as ort

    root = pathlib.Path(sys.argv[1])
    spec = json.loads((root / "cases.json").read_text())
    tol = spec["tolerance"]
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    failures = 0
    for case in spec["cases"]:
        path = str(root / case["model"])
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        graph = model.graph
        assert [i.name for i in graph.input] == ["input"], graph.input
        assert [o.name for o in graph.output] == ["output"], graph.output
        batch = graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_param == "batch", f"{case['name']}: batch dimension is {batch}"
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        worst = 0.0
        for run in case["runs"]:
            x = np.asarray(run["input"], dtype=np.float32).reshape(run["shape"])
            (y,) = session.run(["output"], {"input": x})
            expected = np.asarray(run["expected"], dtype=np.float32).reshape(y.shape)
            worst = max(worst, float(np.max(np.abs(y - expected))))
        ok = worst <= tol
        failures += not ok
        batches = ",".join(str(r["shape"][0]) for r in case["runs"])
        status = "ok" if ok else f"FAILED (tolerance {tol})"
        print(f"{case['name']}: checker ok (opset {model.opset_import[0].version}, IR {model.ir_version}); "
              f"onnxruntime batches {batches}: max |diff| {worst:.3g} {status}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
