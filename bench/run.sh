#!/usr/bin/env bash
# Benchmark table of anole: host adaptation and prediction, anole against tract on the same
# exported ONNX model, meta-training throughput against PyTorch, and the firmware's instruction
# counts. Prints one markdown table, headed by the machine it ran on, and keeps a copy in
# target/bench/table.md (logs of every step next to it).
#
#   bash bench/run.sh [--firmware] [--quick]
#
#   --firmware  run `bash firmware-examples/run.sh` first (slow) to refresh the Cortex-M counts;
#               without it they are read from firmware-examples/target/firmware-report.md.
#   --quick     short runs (a smoke check of the script, not numbers to quote).
#
# Environment: OMNIGLOT_DIR (default ../shared/data/omniglot), BENCH_VENV (default
# target/bench-venv: the Python venv where PyTorch is installed by pip on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

firmware=0
quick=0
for a in "$@"; do
    case "$a" in
        --firmware) firmware=1 ;;
        --quick) quick=1 ;;
        -h | --help)
            sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench/run.sh: unknown option '$a' (try --help)" >&2
            exit 2
            ;;
    esac
done

data=${OMNIGLOT_DIR:-../shared/data/omniglot}
venv=${BENCH_VENV:-target/bench-venv}
out=target/bench
mkdir -p "$out"
load1() { cut -d' ' -f1 /proc/loadavg; }
load_start=$(load1)
say() { echo "bench: $*" >&2; }

if [ "$firmware" = 1 ]; then
    say "firmware (firmware-examples/run.sh, log in $out/firmware.log)"
    bash firmware-examples/run.sh >"$out/firmware.log" 2>&1 || {
        say "firmware-examples/run.sh failed; see $out/firmware.log"
        exit 1
    }
fi

say "building (cargo build --release -p anole-bench -p anole-trainer)"
cargo build --release -q -p anole-bench -p anole-trainer

# The Omniglot 5-way model: the shipped one, else a random initialization exported by the CLI
# (same architecture, same exporter; speed does not depend on the weights).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -f models/omniglot-5way/init.onnx ] && [ -f models/omniglot-5way/init.postcard ]; then
    omni=models/omniglot-5way
    omni_label="models/omniglot-5way"
else
    say "exporting a random-init Omniglot 5-way model (anole train omniglot --iters 0)"
    target/release/anole train omniglot --data "$data" --ways 5 --iters 0 --eval-tasks 1 \
        --shots 1 --out "$tmp/omniglot-5way" >"$out/omniglot-export.log" 2>&1 || {
        say "exporting the Omniglot model failed; see $out/omniglot-export.log"
        exit 1
    }
    omni="$tmp/omniglot-5way"
    omni_label="random init exported by \`anole train omniglot --iters 0\`"
fi

# PyTorch, installed by pip into a venv on first use (CPU wheel index first, then PyPI).
torch_ok() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import torch' 2>/dev/null; }
if ! torch_ok; then
    say "installing PyTorch into $venv (log in $out/pip.log)"
    {
        python3 -m venv "$venv" &&
            { "$venv/bin/pip" install torch --index-url https://download.pytorch.org/whl/cpu ||
                "$venv/bin/pip" install torch; }
    } >"$out/pip.log" 2>&1 || true
fi
if [ "$quick" = 1 ]; then
    sine_args=(--iters 300 --runs 1)
    omni_args=(--iters 3 --max-seconds 20)
    bench_args=(--budget-ms 200 --sine-iters 300 --omniglot-iters 2)
else
    sine_args=(--iters 3000 --runs 3)
    omni_args=(--iters 30 --max-seconds 120)
    bench_args=(--budget-ms 1500 --sine-iters 3000 --omniglot-iters 30)
fi
# name, script, arguments: sine on 1 thread (plain single-threaded PyTorch), Omniglot with
# PyTorch's default threads (one per core) and, for reference, on 1 thread.
for run in sine omniglot omniglot_1thread; do
    json="$out/pytorch_$run.json"
    if ! torch_ok; then
        echo '{"error": "torch could not be installed by pip (see target/bench/pip.log)"}' >"$json"
        continue
    fi
    case "$run" in
        sine) script=sine args=("${sine_args[@]}") ;;
        omniglot) script=omniglot args=("${omni_args[@]}") ;;
        omniglot_1thread) script=omniglot args=("${omni_args[@]}" --threads 1) ;;
    esac
    say "PyTorch $run (log in $out/pytorch_$run.log)"
    "$venv/bin/python" "bench/pytorch_$script.py" "${args[@]}" >"$json" 2>"$out/pytorch_$run.log" ||
        echo "{\"error\": \"bench/pytorch_$script.py failed (see target/bench/pytorch_$run.log)\"}" >"$json"
done

say "anole (host, tract, meta-training)"
target/release/anole-bench --sine models/sine --omniglot "$omni" --omniglot-label "$omni_label" \
    --data "$data" --pytorch-sine "$out/pytorch_sine.json" \
    --pytorch-omniglot "$out/pytorch_omniglot.json" \
    --pytorch-omniglot-1thread "$out/pytorch_omniglot_1thread.json" \
    --firmware-report firmware-examples/target/firmware-report.md "${bench_args[@]}" \
    >"$out/rows.md"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
# The CPU's vector features that the host kernels choose between (baseline SSE2, AVX2 + FMA,
# AVX-512 F/VL/BW/DQ).
flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | tr ' ' '\n' |
    grep -xE 'sse2|avx|avx2|fma|avx512f|avx512vl|avx512bw|avx512dq' | tr '\n' ' ' | sed 's/ $//')
{
    echo "Machine: $cpu (${flags:-no vector features listed}), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), $(rustc --version)," \
        "load average (1 min) $load_start at start, $(load1) at end$([ "$quick" = 1 ] && echo ' (--quick: smoke run, not for quoting)')"
    echo
    cat "$out/rows.md"
} >"$out/table.md"
cat "$out/table.md"
