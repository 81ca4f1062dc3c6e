#!/usr/bin/env bash
# Prints the slowest tests of a `swift test` run from its output (Swift Testing's
# "✔ Test NAME passed after N seconds." lines), slowest first.
#   ops/slowest-tests.sh TEST_OUTPUT.log [COUNT]
set -euo pipefail
log=${1:?usage: $0 TEST_OUTPUT.log [COUNT]}
count=${2:-15}
echo "Slowest tests (of $(grep -v " Test run with " "$log" | grep -cE '^[^ ]+ Test .* (passed|failed) after [0-9.]+ seconds' || true) tests):"
grep -E '^[^ ]+ Test .* (passed|failed) after [0-9.]+ seconds' "$log" \
    | grep -v ' Test run with ' | sed -E 's/^[^ ]+ Test (.*) (passed|failed) after ([0-9.]+) seconds.*/\3\t\2\t\1/' \
    | sort -t$'\t' -k1,1 -g -r | head -n "$count" \
    | awk -F'\t' '{ printf "%9.1f s  %-6s  %s\n", $1, $2, $3 }'
