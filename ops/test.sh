#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Real-model checks run when the base
# model is present ($ATTUNE_MODEL or `attune model fetch`); ATTUNE_REQUIRE_MODEL=1 makes them
# mandatory.
set -euo pipefail
cd "$(dirname "$0")/.."
# Multi-process tests run the attune executable next to the test bundle: build it with the same flags.
# Every target must declare the targets it imports (an undeclared import fails the build).
checks=(--explicit-target-dependency-import-check error)
swift build -c release -Xswiftc -enable-testing "${checks[@]}" --product attune
# The test process loads OpenBLAS as attune does: with the kernels attune picks for this CPU
# (OpenBLAS 0.3.21 falls back to SSE3 kernels on CPUs it does not know).
OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-$("$(swift build -c release --show-bin-path)/attune" bench machine --blas-core)}"
export OPENBLAS_CORETYPE
swift test -c release -Xswiftc -enable-testing "${checks[@]}" "$@"
