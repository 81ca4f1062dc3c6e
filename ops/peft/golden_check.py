"""Compare transformers' fp32 forward of the GGUF with Attune's golden log-softmax file."""
import argparse
import json
import os
import sys

import numpy as np
import torch

from base import DEFAULT_GGUF, load_model, prompt_ids

GOLDEN = os.path.join(os.path.dirname(__file__), "../../Tests/AttuneModelTests/Golden")

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--model", default=DEFAULT_GGUF)
p.add_argument("--golden", default=os.path.join(GOLDEN, "smollm2_logprobs.f32"))
p.add_argument("--reference", default=os.path.join(GOLDEN, "smollm2_reference.json"))
p.add_argument("--tolerance", type=float, default=1e-3)
args = p.parse_args()

ref = json.load(open(args.reference))
ids = ref["prompt_ids"]
tokenized = prompt_ids(args.model, ref["prompt"])
if tokenized != ids:
    sys.exit(f"tokenizer mismatch: transformers gives {tokenized}, golden uses {ids}")
golden = np.fromfile(args.golden, dtype=np.float32).reshape(ref["logprobs_shape"])

model = load_model(args.model).eval()
with torch.no_grad():
    ours = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1).numpy()
diff = np.abs(ours - golden)
print(json.dumps({"max_abs_diff": float(diff.max()),
                  "max_abs_diff_per_position": [float(d) for d in diff.max(axis=1)],
                  "argmax_match": bool((ours.argmax(1) == golden.argmax(1)).all())}))
sys.exit(0 if diff.max() <= args.tolerance else 1)
