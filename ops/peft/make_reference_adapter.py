"""Save a PEFT LoRA adapter with random non-zero A and B (init_lora_weights=False) for the GGUF base,
plus PEFT's float32 log-softmax at the last position of a prompt: a fixture for Attune's PEFT loader."""
import argparse
import json
import os

import torch
from peft import LoraConfig, get_peft_model

from base import DEFAULT_GGUF, TARGETS, last_logprobs, load_model, prompt_ids

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("out_dir")
p.add_argument("--model", default=DEFAULT_GGUF)
p.add_argument("--prompt", default="The capital of France is")
p.add_argument("--rank", type=int, default=8)
p.add_argument("--alpha", type=float, default=16)
p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated module names")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()

torch.manual_seed(args.seed)
lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, target_modules=args.targets.split(","),
                  init_lora_weights=False, task_type="CAUSAL_LM")
model = get_peft_model(load_model(args.model), lora)
model.save_pretrained(args.out_dir)

ids = prompt_ids(args.model, args.prompt)
logprobs = last_logprobs(model, ids)
logprobs.tofile(os.path.join(args.out_dir, "logprobs.f32"))
reference = {"prompt": args.prompt, "prompt_ids": ids, "logprobs": "logprobs.f32",
             "argmax": int(logprobs.argmax()), "seed": args.seed}
with open(os.path.join(args.out_dir, "reference.json"), "w") as f:
    json.dump(reference, f, indent=1)
print(json.dumps(reference))
