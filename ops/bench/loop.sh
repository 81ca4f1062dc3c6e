#!/usr/bin/env bash
# Freshness of the whole loop on the real model, embedded log, one process each as a user runs
# them: `attune serve` (gateway inside) and one `attune train-worker` (default settings, plus
# $WORKER_OPTIONS), a domain adapter published first. N interactions are POSTed through
# the gateway at RATE per second; reported per interaction: POST → announcement of the first
# version covering it (on /v1/events), and POST → first completion served by such a version.
#   ops/bench/loop.sh [N] [RATE]
set -euo pipefail
source "$(dirname "$0")/common.sh"
N="${1:-20}"; RATE="${2:-0.5}"
A="$(pwd)/${ATTUNE_BIN:-.build/release/attune}"; [ -x "$A" ] || A="$ATTUNE_BIN"
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores; features:" \
  $(for f in avx2 fma avx512f; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done)
ROOT=$(pwd)
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
"$A" topics apply >/dev/null
python3 - <<'PY' | "$A" produce -t attune.corpora -k licenses 2>/dev/null
import json, re
n = 0
for name in ["Apache-2.0", "MPL-2.0", "GPL-3"]:
    for p in re.split(r"\n\s*\n", open("/usr/share/common-licenses/" + name).read()):
        if len(p.strip()) > 200 and n < 24:
            print(json.dumps({"domain": "licenses", "doc_id": f"lic-{n}", "text": " ".join(p.split()), "source": "common-licenses"}))
            n += 1
PY
"$A" train-worker --model "$MODEL" --idle 3 --steps 4 --batch-size 4 --seq-len 128 --batch-tokens 1500 --log-level warning
# The worker's default settings; WORKER_OPTIONS adds to them.
"$A" train-worker --model "$MODEL" --domain-wait 0 --log-level warning ${WORKER_OPTIONS:-} >"$dir/worker.log" 2>&1 &
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$A" serve --model "$MODEL" --port "$PORT" --log-level warning >"$dir/serve.log" 2>&1 &
for _ in $(seq 600); do curl -sf "localhost:$PORT/readyz" >/dev/null && break; sleep 0.2; done
python3 "$ROOT/ops/bench/loop_client.py" --port "$PORT" --n "$N" --rate "$RATE"
