#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) peer for `attune bench model`: same GGUF, same prompt ids,
2 threads; prints one JSON line with prefill/decode tokens per second and peak RSS."""
import argparse
import json
import resource
import time

import numpy as np
from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    llm = Llama(model_path=a.model, n_threads=a.threads, n_threads_batch=a.threads, n_ctx=1024,
                n_batch=512, verbose=False)
    vocab = llm.n_vocab()
    prompt = [(i * 7919) % min(40000, vocab - 100) + 100 for i in range(a.prompt_tokens)]
    prefill, decode = [], []
    for _ in range(a.repeats):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        for _ in range(a.new_tokens):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([tok])
        t2 = time.perf_counter()
        prefill.append(a.prompt_tokens / (t1 - t0))
        decode.append(a.new_tokens / (t2 - t1))
    print(json.dumps({"engine": "llama.cpp", "prefill_tok_s": max(prefill), "decode_tok_s": max(decode),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "prompt_tokens": a.prompt_tokens, "new_tokens": a.new_tokens}, sort_keys=True))


if __name__ == "__main__":
    main()
