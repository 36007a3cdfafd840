#!/usr/bin/env bash
# Fuzz every cargo-fuzz target of the CLI's input readers (CSV samples, PNG images) for N
# seconds each (default 60) and print the executions and crashes per target.
# Usage: trainer/fuzz/run.sh [seconds]   (scripts/fuzz.sh runs every fuzz project)
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/fuzz.sh" "${1:-60}" trainer/fuzz
