#!/usr/bin/env bash
# Fuzz every cargo-fuzz target of the given projects (default: runtime/fuzz and trainer/fuzz)
# for N seconds each (default 60). Prints each project's sanitizer build time, then the
# executions and crashes per target. Usage: bash scripts/fuzz.sh [seconds] [project...]
#
# The seed corpus in <project>/corpus/<target>/ is read, never written: new inputs go to a
# scratch corpus under <project>/target/. Crashing inputs are saved in
# <project>/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
projects=("$@")
if [ "${#projects[@]}" -eq 0 ]; then
    projects=(runtime/fuzz trainer/fuzz)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes nightly-only flags (-Z sanitizer=...); this lets a stable toolchain take them.
export RUSTC_BOOTSTRAP=1

status=0
summary=()
for project in "${projects[@]}"; do
    pushd "$project" >/dev/null
    mkdir -p target
    echo "== $project: building the fuzz targets" >&2
    start=$(date +%s)
    if ! cargo fuzz build >target/fuzz-build.log 2>&1; then
        tail -30 target/fuzz-build.log >&2
        summary+=("$(printf '%-16s build failed' "$project")")
        status=1
        popd >/dev/null
        continue
    fi
    summary+=("$(printf '%-16s build %ss (AddressSanitizer, release)' "$project" $(($(date +%s) - start)))")
    for target in $(cargo fuzz list); do
        work="target/corpus-work/$target"
        mkdir -p "$work" "artifacts/$target"
        before=$(find "artifacts/$target" -type f | wc -l)
        log="target/fuzz-$target.log"
        echo "== $project $target: ${secs}s" >&2
        set +e
        cargo fuzz run "$target" "$work" "corpus/$target" -- \
            -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
        rc=$?
        set -e
        execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
        after=$(find "artifacts/$target" -type f | wc -l)
        crashes=$((after - before))
        if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
            # The build or the fuzzer itself failed: show why.
            tail -30 "$log" >&2
            crashes="?"
            status=1
        elif [ "$crashes" -ne 0 ]; then
            grep -m1 -A20 -E 'panicked|ERROR: ' "$log" >&2 || true
            status=1
        fi
        summary+=("$(printf '%-16s %6ss  executions %10s  crashes %s' "$target" "$secs" "${execs:-?}" "$crashes")")
    done
    popd >/dev/null
done
printf '%s\n' "${summary[@]}"
exit "$status"
