#!/usr/bin/env bash
# Gateway ingestion benchmark, side by side in one run on the same log: `attune gateway`
# taking interactions over HTTP (single-record POSTs from 8 connections; bulk NDJSON of BATCH
# records from 2), each answered after the log acknowledged every record, vs `attune produce`
# sending the same records from standard input (its own batching, schema-checked too).
#   ops/bench/gateway.sh [SINGLE] [BULK] [BATCH]       embedded log, then the Kafka test broker
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SINGLE="${1:-2000}"; BULK="${2:-50000}"; BATCH="${3:-500}"
[ -n "${ATTUNE_BIN:-}" ] || swift build -c release --product attune >/dev/null
A="$(pwd)/${ATTUNE_BIN:-.build/release/attune}"; [ -x "$A" ] || A="${ATTUNE_BIN}"
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores; features:" \
  $(for f in avx2 fma avx512f; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done)
run() {   # $1 = label, rest = transport options
  local label=$1; shift
  local dir; dir=$(mktemp -d)
  local prefix="b$RANDOM."
  "$A" topics apply "$@" --topic-prefix "$prefix" >/dev/null
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  (cd "$dir" && exec "$A" gateway "$@" --topic-prefix "$prefix" --port "$port" --state-dir "$dir/state" \
      --log-level warning >"$dir/gateway.log" 2>&1) &   # no key file there: open, on loopback
  local pid=$!
  for _ in $(seq 100); do curl -sf "localhost:$port/healthz" >/dev/null && break; sleep 0.1; done
  python3 ops/bench/gateway_load.py --port "$port" --single "$SINGLE" --bulk "$BULK" --batch "$BATCH" | sed "s/^{/{\"log\": \"$label\", /"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "
import json
for i in range($BULK): print(f't{i % 100}\t' + json.dumps({'tenant': f't{i % 100}', 'user': f'u{i}', 'time': '2026-12-02T10:00:00Z', 'prompt': f'Question {i}?', 'response': f'Answer {i}.'}))" >"$dir/records.tsv"
  local t0 t1; t0=$(date +%s.%N)
  "$A" produce "$@" --topic-prefix "$prefix" -t "${prefix}attune.interactions" -K $'\t' <"$dir/records.tsv" 2>/dev/null
  t1=$(date +%s.%N)
  python3 -c "import json; s = $t1 - $t0; print(json.dumps({'log': '$label', 'phase': 'attune produce', 'records': $BULK, 'seconds': s, 'records_s': $BULK / s}))"
  rm -rf "$dir"
}
out=$(mktemp)
EMBEDDED_DIR=$(mktemp -d)
run embedded --log-dir "$EMBEDDED_DIR" >>"$out"
BOOTSTRAP=$(ops/kafka/broker.sh start)
run kafka --transport kafka --bootstrap "$BOOTSTRAP" >>"$out"
rm -rf "$EMBEDDED_DIR"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"{'log':9} {'path':28} {'records':>8} {'records/s':>10} {'vs produce':>10} {'ack p50 ms':>11} {'ack p99 ms':>11}")
for log in ["embedded", "kafka"]:
    peer = next(r["records_s"] for r in rows if r["log"] == log and r["phase"] == "attune produce")
    for r in (r for r in rows if r["log"] == log):
        name = {"single": "gateway, 1 record/POST ×8", "bulk": "gateway, NDJSON bulk ×2"}.get(r["phase"], r["phase"])
        p50 = f"{r['p50_ms']:.1f}" if "p50_ms" in r else "–"
        p99 = f"{r['p99_ms']:.1f}" if "p99_ms" in r else "–"
        print(f"{log:9} {name:28} {r['records']:>8} {r['records_s']:>10.0f} {r['records_s'] / peer:>9.0%} {p50:>11} {p99:>11}")
PY
rm -f "$out"
