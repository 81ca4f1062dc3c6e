"""Check an adapter directory (e.g. written by Attune) against PEFT: verify its safetensors keys, dtypes and
shapes are exactly what PEFT expects for the GGUF's llama model, then load it with PeftModel.from_pretrained
and compare the last-position log-softmax of a prompt with a float32 file.
Exit status: 0 match, 1 log-softmax differs by more than --tolerance, 2 malformed adapter or inputs."""
import argparse
import json
import os
import sys

import numpy as np
from peft import PeftModel
from safetensors import safe_open

from base import DEFAULT_GGUF, last_logprobs, load_config, load_model, prompt_ids

BLOCK = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
         "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def fail(*lines):
    print("peft_interop: error: " + "\n  ".join(lines), file=sys.stderr)
    sys.exit(2)


def expected_tensors(config, targets, r):
    """PEFT key -> shape for LoRA with rank r on the given modules of every decoder layer."""
    hidden, inter = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q, kv = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    in_out = {"q_proj": (hidden, q), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (q, hidden),
              "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}
    shapes = {}
    for layer in range(config.num_hidden_layers):
        for t in targets:
            n_in, n_out = in_out[t]
            prefix = f"base_model.model.model.layers.{layer}.{BLOCK[t]}.{t}"
            shapes[f"{prefix}.lora_A.weight"] = [r, n_in]
            shapes[f"{prefix}.lora_B.weight"] = [n_out, r]
    return shapes


def verify_adapter(adapter_dir, config):
    try:
        with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read adapter_config.json: {e}")
    if cfg.get("peft_type") != "LORA":
        fail(f"peft_type is {cfg.get('peft_type')!r}, expected 'LORA'")
    targets, r = cfg.get("target_modules"), cfg.get("r")
    if not isinstance(targets, list) or not targets or not set(targets) <= set(BLOCK):
        fail(f"target_modules {targets!r} must be a non-empty list drawn from {sorted(BLOCK)}")
    if not isinstance(r, int) or r < 1:
        fail(f"r is {r!r}, expected a positive integer")
    for field in ("rank_pattern", "layers_to_transform"):
        if cfg.get(field):
            fail(f"{field} is set ({cfg[field]!r}); this check expects rank r on every layer")

    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    found = {}
    try:
        with safe_open(path, framework="numpy") as f:
            for k in f.keys():
                t = f.get_slice(k)
                found[k] = (t.get_dtype(), t.get_shape())
    except Exception as e:  # safetensors raises its own error type for a corrupt header
        fail(f"cannot open {path} with safetensors: {e}")

    expected = expected_tensors(config, targets, r)
    errors = [f"missing key {k} (expected F32 {s})" for k, s in expected.items() if k not in found]
    errors += [f"unexpected key {k}" for k in found if k not in expected]
    for k, (dtype, shape) in found.items():
        if k in expected and (dtype != "F32" or list(shape) != expected[k]):
            errors.append(f"{k}: {dtype} {list(shape)}, expected F32 {expected[k]}")
    if errors:
        fail(f"{path} does not match PEFT's layout for r={r}, targets={targets} "
             f"({len(errors)} problem(s), up to 20 shown):", *errors[:20])
    print(f"adapter layout ok: {len(expected)} F32 tensors, r={r}, targets={targets}", file=sys.stderr)


p = argparse.ArgumentParser(description=__doc__)
p.add_argument("adapter_dir")
p.add_argument("--model", default=DEFAULT_GGUF)
p.add_argument("--logprobs", required=True, help="float32 log-softmax at the last prompt position")
p.add_argument("--prompt", required=True)
p.add_argument("--tolerance", type=float, default=2e-3)
args = p.parse_args()

config = load_config(args.model)
verify_adapter(args.adapter_dir, config)
theirs = np.fromfile(args.logprobs, dtype=np.float32)
if theirs.size != config.vocab_size:
    fail(f"{args.logprobs} has {theirs.size} floats, expected {config.vocab_size}")

ids = prompt_ids(args.model, args.prompt)
ours = last_logprobs(PeftModel.from_pretrained(load_model(args.model), args.adapter_dir), ids)
diff = float(np.abs(ours - theirs).max())
ok = diff <= args.tolerance
print(json.dumps({"prompt_ids": ids, "max_abs_diff": diff, "tolerance": args.tolerance,
                  "argmax_match": int(ours.argmax()) == int(theirs.argmax()), "ok": ok}))
sys.exit(0 if ok else 1)
