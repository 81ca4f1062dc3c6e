#!/usr/bin/env bash
# Runs the README's test command (ops/test.sh) RUNS times in a row (default 2) with a CPU hog
# on every core beside it — the proof that no test depends on the machine being idle. Uses
# stress-ng when installed (Debian `stress-ng`), else one busy shell loop per core. Starts the
# test broker and requires the Kafka and real-model cases, as CI does. Prints each run's wall
# time and its slowest tests; stops at the first failing run.
#   ops/test-under-load.sh [RUNS] [-- extra swift test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
[[ $# -gt 0 ]] && shift
[[ "${1:-}" == "--" ]] && shift

cores=$(nproc)
hog_pids=()
stop_hog() { [[ ${#hog_pids[@]} -gt 0 ]] && kill "${hog_pids[@]}" 2>/dev/null || true; }
trap 'stop_hog; ops/kafka/broker.sh stop || true' EXIT

export ATTUNE_KAFKA_BOOTSTRAP="$(ops/kafka/broker.sh start)"
export ATTUNE_REQUIRE_KAFKA=1
export ATTUNE_HOME="${ATTUNE_HOME:-$PWD/.cache/attune}"
swift build -c release -Xswiftc -enable-testing --product attune
.build/release/attune model fetch >/dev/null
export ATTUNE_MODEL="$ATTUNE_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
export ATTUNE_REQUIRE_MODEL=1

if command -v stress-ng >/dev/null; then
    stress-ng --cpu "$cores" --quiet &
    hog_pids+=($!)
    hog="stress-ng --cpu $cores"
else
    for _ in $(seq "$cores"); do
        bash -c 'while :; do :; done' &
        hog_pids+=($!)
    done
    hog="$cores busy loops"
fi
echo "CPU hog: $hog on a $cores-core $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"

for run in $(seq "$runs"); do
    log=".build/test-under-load-$run.log"
    start=$(date +%s)
    status=0
    bash ops/test.sh "$@" >"$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - start ))
    echo "run $run/$runs: exit $status, wall ${elapsed} s, $(grep -E 'Test run with' "$log" | tail -1 | sed -E 's/^[^ ]+ //')"
    ops/slowest-tests.sh "$log" 8
    if [[ $status -ne 0 ]]; then
        grep -E '✘' "$log" | head -40 || true
        exit "$status"
    fi
done
