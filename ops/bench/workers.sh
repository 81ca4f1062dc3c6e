#!/usr/bin/env bash
# Training-worker freshness and throughput on the real model: a domain adapter published first,
# then one tenant-interaction stream produced at a fixed rate into a fresh embedded log, trained
# by 1 and then 2 `attune train-worker` processes with their default settings; prints throughput
# and produce→publish latency (p50/p95/max). PEER=<attune binary> measures another release in
# the same run, alternating; ATTUNE_BIN runs a built binary instead of building.
#   ops/bench/workers.sh [WORKERS] [TENANTS] [PER_TENANT] [RATE] [extra `attune bench workers` options…]
source "$(dirname "$0")/common.sh"
WORKERS="${1:-1,2}"; TENANTS="${2:-8}"; PER_TENANT="${3:-12}"; RATE="${4:-2}"
shift $(( $# < 4 ? $# : 4 ))
A="${ATTUNE_BIN:-.build/release/attune}"
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores; features:" \
  $(for f in avx2 fma avx512f avx512_vnni; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done)
"$A" bench workers --model "$MODEL" --workers "$WORKERS" --tenants "$TENANTS" --per-tenant "$PER_TENANT" --rate "$RATE" \
  ${PEER:+--peer "$PEER"} "$@"
