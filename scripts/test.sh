#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run). Installs what it needs on a fresh Debian
# machine (scripts/setup.sh), then: formatting, lints, every unit / integration / end-to-end
# test (release profile), the runtime's core-only ARM builds, the firmware examples under QEMU,
# and a short fuzzing run of every fuzz target.
# Usage: bash scripts/test.sh            FUZZ_SECONDS=N to change the fuzzing time per target (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() { printf '\n==== %s\n' "$*"; }
# The runtime's features the Omniglot firmware builds with (every default but the extra layers).
omniglot_set=conv,norm,cross-entropy,adam

step "setup"
bash scripts/setup.sh

step "format"
cargo fmt --all -- --check
python3 scripts/results.py --check   # docs/results.md and the README's summary match models/*/card.json

step "lints"
cargo clippy --workspace --all-targets --release -- -D warnings
cargo clippy -p anole --all-targets --release -- -D warnings
cargo clippy -p anole --all-targets --release --no-default-features -- -D warnings
cargo clippy -p anole --all-targets --release --no-default-features --features "$omniglot_set" -- -D warnings
cargo clippy -p anole --all-targets --release --all-features -- -D warnings

step "tests (workspace, release)"
cargo test --workspace --release --exclude anole-capi 2>&1 | tee "$log"

step "runtime tests by feature: every kind (the default), the Omniglot firmware's, the minimal (no default features), all"
cargo test -p anole --release 2>&1 | tee -a "$log"
cargo test -p anole --release --no-default-features --features "$omniglot_set" 2>&1 | tee -a "$log"
cargo test -p anole --release --no-default-features 2>&1 | tee -a "$log"
cargo test -p anole --release --all-features 2>&1 | tee -a "$log"

step "C API: committed header current (cbindgen), host C tests (gcc, valgrind), entry points"
cargo test -p anole-capi --release 2>&1 | tee -a "$log"

step "Python package: pip install ./python (maturin, the workspace's target/), pytest, the docs example"
# The tests compare with the CLI the workspace tests built (target/release/anole); the example
# runs the code of docs/python.md on its committed ONNX model. PyTorch (about 1.5 minutes to
# install) builds the reference models of test_reference_models.py, which must run here.
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q numpy pytest onnx onnxruntime onnxscript torch matplotlib
python3 -m pip install -q --force-reinstall --no-deps ./python
ANOLE_REQUIRE_TORCH=1 python3 -m pytest -q python/tests 2>&1 | tee -a "$log"
python3 python/examples/fleet.py --plot target/fleet.png

step "fleet: federated Reptile on Flower (pytest: in-process rounds, a small simulation; a small deployment)"
python3 -m pip install -q "flwr[simulation]==1.42.0" pillow
python3 -m pytest -q fleet/tests 2>&1 | tee -a "$log"
# A fresh state: a kept one would be resumed after its last round, and no round would run.
rm -rf target/fleet-ci
bash fleet/deploy.sh --nodes 3 --rounds 2 --state target/fleet-ci

step "runtime: core-only builds for Cortex-M and RISC-V"
bash runtime/ci-device-check.sh

step "firmware examples (build all, run the emulated ones)"
bash firmware-examples/run.sh

step "reference models on the Cortex-M4F (models-m4: the blobs from the Python package and PyTorch above)"
bash firmware-examples/models-m4/run.sh

step "fuzzing: runtime and CLI readers (${FUZZ_SECONDS:-60} s per target)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"

passed=$(grep -Eo 'test result: ok\. [0-9]+ passed|^[0-9]+ passed' "$log" | awk '{s += $(NF - 1)} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
printf '\nall steps passed\n%s passed, %s failed\n' "$passed" "$failed"
