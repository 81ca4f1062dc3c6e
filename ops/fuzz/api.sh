#!/usr/bin/env bash
# Fuzz the HTTP API from its OpenAPI document with schemathesis (PyPI): every operation of
# `attune gateway` (ingestion, feedback, events, subscriptions, whoami) with an admin key and
# without one, then the inference routes of `attune serve` on the real model (generation
# lengths kept small by the schema's examples budget). Fails on any 5xx, crash or response
# that breaks the document.
#   ops/fuzz/api.sh [EXAMPLES]          (needs: pip install schemathesis==4.32.5)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
EXAMPLES="${1:-100}"
command -v schemathesis >/dev/null || { echo "schemathesis missing: pip install schemathesis==4.32.5" >&2; exit 1; }
[ -n "${ATTUNE_BIN:-}" ] || swift build -c release --product attune >/dev/null
A="${ATTUNE_BIN:-$(pwd)/.build/release/attune}"
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
"$A" topics apply >/dev/null
KEY=$("$A" keys create --name fuzz --role admin 2>/dev/null)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 600); do curl -sf "localhost:$1/readyz" >/dev/null && return 0; sleep 0.2; done; echo "no server on $1" >&2; exit 1; }
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run() {   # $1 = port, rest = schemathesis options
  local port=$1; shift
  schemathesis run "http://127.0.0.1:$port/openapi.json" --checks "$checks" -n "$EXAMPLES" \
    --request-timeout 60 --suppress-health-check all "$@"
}

GW=$(free_port)
"$A" gateway --port "$GW" --log-level error >"$dir/gateway.log" 2>&1 &
wait_ready "$GW"
echo "== attune gateway, admin key"
run "$GW" -H "Authorization: Bearer $KEY" --include-path-regex '^/v1/(interactions|corpora|feedback|subscriptions|me)'
echo "== attune gateway, no key"
run "$GW" --include-path-regex '^/v1/' --exclude-checks status_code_conformance,response_schema_conformance

if [ -n "${ATTUNE_MODEL:-}${ATTUNE_HOME:-}" ] || [ -f "$HOME/.cache/attune/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  SV=$(free_port)
  "$A" serve --port "$SV" --weights quantized --kv-memory 512MiB --log-level error >"$dir/serve.log" 2>&1 &
  wait_ready "$SV"
  echo "== attune serve, admin key: inference routes"
  run "$SV" -H "Authorization: Bearer $KEY" --include-path-regex '^/v1/(completions|chat/completions|score|models)$'
fi
