#!/usr/bin/env bash
# Forgetting on the real model: a tenant stream whose phase 1 is license text (Debian's
# /usr/share/common-licenses) and phase 2 Swift source code (this repository), trained
# naively in sequence and with replay + regularization; prints the held-out losses.
#   ops/bench/forgetting.sh [STEPS] [REGULARIZER] [STRENGTH] [REPLAY_RATIO]
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-20}"; REG="${2:-l2sp}"; STRENGTH="${3:-0.1}"; REPLAY="${4:-0.5}"
WORK=.attune/forgetting
mkdir -p "$WORK"
PYTHONPATH=ops/bench python3 - "$WORK" <<'PY'
import glob, json, sys
from licenses import write_domain
work = sys.argv[1]
write_domain(f"{work}/phase1.jsonl")
with open(f"{work}/phase2.jsonl", "w") as out:
    for path in sorted(glob.glob("Sources/Attune*/**/*.swift", recursive=True)):
        text = open(path).read()
        for i in range(0, len(text), 800):
            out.write(json.dumps({"text": text[i:i + 800]}) + "\n")
PY
swift build -c release --product attune >/dev/null
.build/release/attune bench forgetting --phase1 "$WORK/phase1.jsonl" --phase2 "$WORK/phase2.jsonl" \
  --steps "$STEPS" --regularizer "$REG" --strength "$STRENGTH" --replay-ratio "$REPLAY"
