#!/usr/bin/env bash
# Fuzz every cargo-fuzz target of the runtime (the blob parser, the learner fed arbitrary
# samples, the convolution's host kernels against the direct ones) for N seconds each (default
# 60) and print the executions and crashes per target.
# Usage: runtime/fuzz/run.sh [seconds]   (scripts/fuzz.sh runs every fuzz project)
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/fuzz.sh" "${1:-60}" runtime/fuzz
