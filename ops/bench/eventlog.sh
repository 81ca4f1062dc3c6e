#!/usr/bin/env bash
# Event-log throughput: the embedded log, the Kafka client and kcat against the same broker.
#
#   ops/bench/eventlog.sh [attune-bench-eventlog options, e.g. --repeat 5 --small 200000 --large 3000]
#
# Uses $ATTUNE_KAFKA_BOOTSTRAP if set; otherwise starts a noida-db broker with
# ops/kafka/broker.sh for the run and stops it afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
command -v kcat >/dev/null || { echo "eventlog.sh: kcat is missing (apt-get install kcat)" >&2; exit 1; }
swift build -c release --scratch-path "${SCRATCH:-$ROOT/.build}" --product attune-bench-eventlog >&2
BIN="${SCRATCH:-$ROOT/.build}/release/attune-bench-eventlog"
if [[ -z "${ATTUNE_KAFKA_BOOTSTRAP:-}" ]]; then
    STATE="$ROOT/.build-kafka-bench"
    ATTUNE_KAFKA_BOOTSTRAP=$(ops/kafka/broker.sh start "$STATE")
    trap 'ops/kafka/broker.sh stop "$STATE"' EXIT
fi
echo "broker: noida-db at $ATTUNE_KAFKA_BOOTSTRAP; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" --bootstrap "$ATTUNE_KAFKA_BOOTSTRAP" "$@"
