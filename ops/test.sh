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
swift test -c release -Xswiftc -enable-testing "${checks[@]}" "$@"
