#!/usr/bin/env bash
# Replay, evaluation and the report on the real model, in one run:
#   ops/bench/replay.sh [DATA_DIR]
# `attune up --demo` fills a data folder (a licenses domain; tenants acme and globex, 8 training
# interactions each from 3 users), then tenant/acme is replayed twice from attune.interactions:
# with every record (the same records the live adapter trained on: its held-out loss should be
# within noise of the live one's) and without the records of user acme-user-0 (forgetting a
# user). Both are compared with the live adapter on acme's two held-out exchanges; then the
# forgetting view of acme's lineage and the HTML report. ATTUNE_BIN=… runs a built binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
A="${ATTUNE_BIN:-.build/release/attune}"
[ -n "${ATTUNE_BIN:-}" ] || swift build -c release --product attune
dir="${1:-$(mktemp -d)}"
mkdir -p "$dir"
log=(--log-dir "$dir/eventlog")
echo "== data folder $dir"
[ -d "$dir/eventlog" ] || "$A" up --demo --data-dir "$dir" > "$dir/up-demo.txt"
held="$dir/acme-held-out.jsonl"
cat > "$held" <<'JSONL'
{"prompt": "May we sell copies of a GPL-3 program?", "response": "Short answer: yes. You may charge for copies, but buyers get the same GPL freedoms and the source."}
{"prompt": "Do we have to keep the copyright headers in files we modify?", "response": "Short answer: yes. Keep the existing copyright headers and add your own notice for the changes."}
JSONL
echo "== replay of every record"
"$A" replay tenant/acme --as tenant/acme~replay-all "${log[@]}" --held-out "$held"
echo "== replay without acme-user-0"
"$A" replay tenant/acme --as tenant/acme~forget-user-0 --exclude-user acme-user-0 "${log[@]}" --held-out "$held"
echo "== models on the held-out exchanges"
"$A" eval models base tenant/acme tenant/acme~replay-all tenant/acme~forget-user-0 --data "$held" --generate --max-tokens 40 "${log[@]}"
echo "== forgetting view"
"$A" eval lineage tenant/acme "${log[@]}"
echo "== report"
"$A" report --out "$dir/report" "${log[@]}"
grep -m1 -o "model name.*" /proc/cpuinfo | head -1
grep -o -w 'avx2\|fma\|avx512f\|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
