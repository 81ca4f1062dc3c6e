#!/usr/bin/env python3
"""Golden dequantization of random blocks in every format Attune reads, by the `gguf` package.

    pip install gguf numpy
    python3 ops/reference/quant_golden.py Tests/AttuneTensorTests/Golden/quant_golden.json
"""
import json
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize

FORMATS = {"F16": (Q.F16, 1, 2), "BF16": (Q.BF16, 1, 2), "Q8_0": (Q.Q8_0, 32, 34), "Q4_0": (Q.Q4_0, 32, 18),
           "Q4_1": (Q.Q4_1, 32, 20), "Q4_K": (Q.Q4_K, 256, 144), "Q6_K": (Q.Q6_K, 256, 210)}
# Byte offsets of f16 scales inside a block (kept finite and small so values are comparable).
HALF_OFFSETS = {"Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q4_K": [0, 2], "Q6_K": [208]}


def main(out):
    rng = np.random.default_rng(7)
    cases = []
    for name, (qtype, block, nbytes) in FORMATS.items():
        elements = 512
        blocks = elements // block
        raw = rng.integers(0, 256, size=blocks * nbytes, dtype=np.uint8)
        if name in ("F16", "BF16"):
            vals = rng.normal(size=elements).astype(np.float32)
            raw = (vals.astype(np.float16).view(np.uint8) if name == "F16"
                   else (vals.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8))
        for b in range(blocks):
            for off in HALF_OFFSETS.get(name, []):
                h = np.array([rng.uniform(-0.05, 0.05)], dtype=np.float16).view(np.uint8)
                raw[b * nbytes + off: b * nbytes + off + 2] = h
        values = dequantize(raw.reshape(1, -1), qtype).reshape(-1)
        cases.append({"format": name, "bytes": raw.tolist(), "values": [float(v) for v in values]})
    with open(out, "w") as fh:
        json.dump({"generator": "ops/reference/quant_golden.py (gguf package dequantize)", "cases": cases}, fh)


if __name__ == "__main__":
    main(sys.argv[1])
