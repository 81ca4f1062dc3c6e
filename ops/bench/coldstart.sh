#!/usr/bin/env bash
# Cold start on the real model: a domain adapter trained on license text (Apache-2.0, MPL-2.0,
# GPL-3 from Debian's /usr/share/common-licenses); five tenants of the domain answer questions
# about other licenses, each in its own house form (header, list markers, sign-off); Reptile
# learns a meta-initialization over them; a sixth tenant with a form of its own then adapts on
# k = 0, 5, 10, 20 of its interactions (EPOCHS passes, as a worker's --epochs) from zero on the
# base model, from zero on the domain adapter, and from the meta-initialization. Prints its
# held-out response loss for each.
# ATTUNE_BIN runs another attune binary instead of building .build/release/attune.
#   ops/bench/coldstart.sh [EPOCHS]
source "$(dirname "$0")/common.sh"
EPOCHS="${1:-4}"
WORK=.attune/coldstart
mkdir -p "$WORK"
PYTHONPATH=ops/bench python3 - "$WORK" <<'PY'
import json, random, sys
from licenses import paragraphs, sentences, write_domain
work = sys.argv[1]
write_domain(f"{work}/domain.jsonl")
# Questions: what follows a paragraph's first sentence, in licenses the domain corpus does not hold.
questions = []
for name in ["GPL-2", "LGPL-2.1", "MPL-1.1", "Artistic", "GFDL-1.3", "LGPL-3", "GPL-1", "CC0-1.0", "GFDL-1.2"]:
    for p in paragraphs(name):
        first, rest = sentences(p)
        if rest:
            questions.append((name, first, rest[:2]))
random.Random(7).shuffle(questions)
# Each tenant's house form: a header naming the license, its own list markers, its own sign-off.
forms = {
    "acme":   ("Acme Legal, {l}:",          ["1. ", "2. "],   "(Quoted verbatim; not legal advice.)"),
    "birch":  ("Birch & Co on {l} --",       ["(a) ", "(b) "], "-- Birch & Co licensing desk"),
    "cobalt": ("COBALT COUNSEL | {l}",       ["- ", "- "],     "Ref: cobalt/licensing"),
    "delta":  ("Delta Law re {l}:",          ["[1] ", "[2] "], "(Delta Law summary service.)"),
    "ember":  ("Ember Partners, {l} quote:", ["1) ", "2) "],   "Ember Partners: for information only."),
    "fjord":  ("Fjord Advisory / {l}",       ["#1 ", "#2 "],   "Fjord Advisory, quoted as written."),
}
sizes = {"acme": 24, "birch": 24, "cobalt": 24, "delta": 24, "ember": 24, "fjord": 30}
at = 0
for tenant, (header, markers, signoff) in forms.items():
    with open(f"{work}/tenant-{tenant}.jsonl", "w") as out:
        for name, first, rest in questions[at:at + sizes[tenant]]:
            lines = "\n".join(m + s for m, s in zip(markers, rest))
            out.write(json.dumps({"prompt": f'In the {name} license, what follows "{first}"?',
                                  "response": f"{header.format(l=name)}\n{lines}\n{signoff}"}) + "\n")
    at += sizes[tenant]
PY
echo "CPU features: $(grep -o -w -E 'avx2|fma|avx512f|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
"${ATTUNE_BIN:-.build/release/attune}" bench cold-start --model "$MODEL" --domain "$WORK/domain.jsonl" \
    --tenants "$WORK"/tenant-{acme,birch,cobalt,delta,ember}.jsonl --newcomer "$WORK/tenant-fjord.jsonl" --epochs "$EPOCHS"
