#!/usr/bin/env bash
# Personalization on the real model: a domain adapter trained on license text (Apache-2.0,
# MPL-2.0, GPL-3 from Debian's /usr/share/common-licenses), then a tenant adapter on top of it
# trained on the tenant's questions about other licenses (GPL-2, LGPL-2.1, MPL-1.1), which the
# tenant always answers in its own form; prints the held-out losses of base, domain and
# personalized. ATTUNE_BIN runs another attune binary instead of building .build/release/attune.
#   ops/bench/personalization.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-25}"
WORK=.attune/personalization
mkdir -p "$WORK"
PYTHONPATH=ops/bench python3 - "$WORK" <<'PY'
import json, sys
from licenses import paragraphs, sentences, write_domain
work = sys.argv[1]
write_domain(f"{work}/domain.jsonl")
# The tenant quotes what follows a sentence, one numbered sentence a line, under a fixed header
# and sign-off: a form the license text itself never has.
with open(f"{work}/tenant.jsonl", "w") as out:
    for name in ["GPL-2", "LGPL-2.1", "MPL-1.1"]:
        for p in paragraphs(name):
            first, rest = sentences(p)
            if rest:
                lines = "\n".join(f"{i}. {s}" for i, s in enumerate(rest[:3], 1))
                out.write(json.dumps({"prompt": f'In the {name} license, what follows "{first}"?',
                                      "response": f"Acme Legal, {name}:\n{lines}\n(Quoted verbatim; not legal advice.)"}) + "\n")
PY
BIN="${ATTUNE_BIN:-.build/release/attune}"
[ -n "${ATTUNE_BIN:-}" ] || swift build -c release --product attune >/dev/null
"$BIN" bench personalization --domain "$WORK/domain.jsonl" --tenant "$WORK/tenant.jsonl" --steps "$STEPS"
