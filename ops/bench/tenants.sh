#!/usr/bin/env bash
# Many tenants on one training worker, real model, embedded log: for each count N, a domain
# adapter first, then one interaction from each of N tenants produced at once; one worker with
# --tenant-memory BUDGET trains a version per tenant. Prints, per N, time per version and the
# worker's peak resident memory; PEER=<attune binary> measures another release (no budget) for
# the counts in PEER_COUNTS, alternating.
#   ops/bench/tenants.sh [COUNTS] [BUDGET]        e.g. ops/bench/tenants.sh 10,100 64MiB
source "$(dirname "$0")/common.sh"
COUNTS="${1:-10,100}"; BUDGET="${2:-64MiB}"
A="${ATTUNE_BIN:-.build/release/attune}"
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores; features:" \
  $(for f in avx2 fma avx512f avx512_vnni; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done)
for n in ${COUNTS//,/ }; do
  peer=()
  [[ ",${PEER_COUNTS:-}," == *",$n,"* ]] && peer=(--peer "$PEER")
  echo "== $n tenants, --tenant-memory $BUDGET"
  "$A" bench workers --model "$MODEL" --workers 1 --tenants "$n" --per-tenant 1 --rate 50 --idle 20 \
    --own-worker-option=--tenant-memory="$BUDGET" "${peer[@]}"
done
