"""License text from Debian's /usr/share/common-licenses as the benchmarks use it: paragraphs
of more than 200 characters with their whitespace collapsed, split into sentences, and the
domain corpus of three licenses."""
import json
import re

DOMAIN_LICENSES = ["Apache-2.0", "MPL-2.0", "GPL-3"]


def paragraphs(name):
    for p in re.split(r"\n\s*\n", open("/usr/share/common-licenses/" + name).read()):
        if len(p.strip()) > 200:
            yield " ".join(p.split())


def sentences(paragraph):
    """The paragraph's first sentence and the ones after it."""
    first, *rest = re.split(r"(?<=[a-z)\"][.;])\s+(?=[A-Z(\"0-9])", paragraph)
    return first, rest


def write_domain(path):
    """The domain corpus: one {"text"} line per paragraph of DOMAIN_LICENSES."""
    with open(path, "w") as out:
        for name in DOMAIN_LICENSES:
            for p in paragraphs(name):
                out.write(json.dumps({"text": p}) + "\n")
