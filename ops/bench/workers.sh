#!/usr/bin/env bash
# Training-worker scaling on the real model: one tenant-interaction stream produced at a fixed
# rate into a fresh embedded log, trained by 1 and then 2 `attune train-worker` processes;
# prints throughput and produce→publish latency (p50/p95/max) side by side.
#   ops/bench/workers.sh [WORKERS] [TENANTS] [PER_TENANT] [RATE] [extra `attune bench workers` options…]
set -euo pipefail
cd "$(dirname "$0")/../.."
WORKERS="${1:-1,2}"; TENANTS="${2:-8}"; PER_TENANT="${3:-12}"; RATE="${4:-2}"
shift $(( $# < 4 ? $# : 4 ))
swift build -c release --product attune >/dev/null
.build/release/attune bench workers --workers "$WORKERS" --tenants "$TENANTS" --per-tenant "$PER_TENANT" --rate "$RATE" "$@"
