#!/usr/bin/env python3
"""Applies an Attune LoRA GGUF in llama.cpp (llama-cpp-python) and compares the next-token
log-softmax with Attune's for the same prompt ids.

    attune model convert BASE.gguf --type F32 --out base-f32.gguf   # llama.cpp quantizes activations
    attune adapter export-gguf ADAPTER --out lora.gguf               # against 4-bit weights; F32 does not
    attune logprobs --model base-f32.gguf --adapter ADAPTER --prompt TEXT --out attune.f32   # prints the ids
    attune logprobs --model base-f32.gguf --prompt TEXT --out attune-base.f32
    python3 ops/reference/llamacpp_lora_check.py base-f32.gguf lora.gguf attune.f32 attune-base.f32 ID ID ...

Reports max |Δ log-softmax| over the whole vocabulary with and without the adapter, and the
adapter's own effect; fails unless llama.cpp with the adapter matches Attune within 2e-3.
(Run on the F32 conversion with an fp32 KV cache, both engines compute the same function:
measured 1e-4 on SmolLM2 with a trained rank-8 adapter whose effect is 4.7 nats.)
"""
import sys

import numpy as np
from llama_cpp import Llama


def logprobs(model, lora, ids):
    llm = Llama(model_path=model, lora_path=lora, n_ctx=256, n_threads=2, logits_all=True, verbose=False,
                type_k=0, type_v=0)  # fp32 KV cache: the default f16 cache alone moves tail log-probs by ~0.1
    llm.eval(ids)
    z = np.array(llm.scores[len(ids) - 1], dtype=np.float64)
    z -= z.max()
    return z - np.log(np.exp(z).sum())


def main():
    base, lora, attune_lora, attune_base = sys.argv[1:5]
    ids = [int(x) for x in sys.argv[5:]]
    ours = np.fromfile(attune_lora, dtype=np.float32)
    ours_base = np.fromfile(attune_base, dtype=np.float32)
    theirs = logprobs(base, lora, ids)
    theirs_base = logprobs(base, None, ids)
    effect = np.abs(ours - ours_base).max()
    print(f"base:    max |attune - llama.cpp| = {np.abs(ours_base - theirs_base).max():.4f}")
    print(f"adapter: max |attune - llama.cpp| = {np.abs(ours - theirs).max():.4f}")
    print(f"adapter effect on attune = {effect:.4f}; on llama.cpp = {np.abs(theirs - theirs_base).max():.4f}")
    delta_gap = np.abs((ours - ours_base) - (theirs - theirs_base)).max()
    print(f"max |Δ_attune - Δ_llama.cpp| = {delta_gap:.4f} ({delta_gap / effect:.1%} of the effect)")
    sys.exit(0 if np.abs(ours - theirs).max() <= 2e-3 else 1)


if __name__ == "__main__":
    main()
