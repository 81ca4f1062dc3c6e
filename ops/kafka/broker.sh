#!/usr/bin/env bash
# Test Kafka-protocol broker (noida-db 0.2.3) on a free loopback port.
#
#   ops/kafka/broker.sh start [STATE_DIR]   install if missing, start, wait until it accepts
#                                           connections, print the bootstrap address and write
#                                           it to STATE_DIR/bootstrap
#   ops/kafka/broker.sh stop  [STATE_DIR]   SIGTERM the broker started from STATE_DIR
#
# STATE_DIR defaults to $ATTUNE_KAFKA_STATE or .build-kafka in the repository root.
# noida-db keeps every record in memory (22 GB RSS after ~9 GB of benchmark data): restart it between
# large runs.
# Usage in CI:
#   export ATTUNE_KAFKA_BOOTSTRAP=$(ops/kafka/broker.sh start)
#   trap 'ops/kafka/broker.sh stop' EXIT
set -euo pipefail

NOIDA_VERSION=0.2.3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${2:-${ATTUNE_KAFKA_STATE:-$ROOT/.build-kafka}}
PYTHON=${PYTHON:-python3}

noida_binary() {
    "$PYTHON" - <<'PY'
import os, sys
try:
    import noida_db
except ImportError:
    sys.exit(1)
print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))
PY
}

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

accepts() {
    "$PYTHON" -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=1); s.close()' "$1" 2>/dev/null
}

start() {
    mkdir -p "$STATE"
    if [[ -f "$STATE/pid" ]] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
        cat "$STATE/bootstrap"
        return 0
    fi
    local bin
    if ! bin=$(noida_binary) || [[ "$("$PYTHON" -m pip show noida-db 2>/dev/null | sed -n 's/^Version: //p')" != "$NOIDA_VERSION" ]]; then
        "$PYTHON" -m pip install --quiet "noida-db==$NOIDA_VERSION" >&2
        bin=$(noida_binary)
    fi
    local port
    port=$(free_port)
    rm -rf "$STATE/data"
    mkdir -p "$STATE/data"
    "$bin" start --only kafka --host 127.0.0.1 --kafka-port "$port" --data-dir "$STATE/data" \
        >"$STATE/broker.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$STATE/pid"
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "broker.sh: noida-db exited; see $STATE/broker.log" >&2
            tail -n 20 "$STATE/broker.log" >&2 || true
            rm -f "$STATE/pid"
            return 1
        fi
        if accepts "$port"; then
            echo "127.0.0.1:$port" >"$STATE/bootstrap"
            echo "127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    echo "broker.sh: broker did not accept connections on 127.0.0.1:$port within 30 s" >&2
    kill -TERM "$pid" 2>/dev/null || true
    rm -f "$STATE/pid"
    return 1
}

stop() {
    [[ -f "$STATE/pid" ]] || return 0
    local pid
    pid=$(cat "$STATE/pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # A broker holding a lot of data can take tens of seconds to shut down.
        for _ in $(seq 1 600); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "broker.sh: noida-db $pid ignored SIGTERM for 60 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$STATE/pid" "$STATE/bootstrap"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop [STATE_DIR]" >&2; exit 2 ;;
esac
