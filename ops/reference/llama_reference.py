#!/usr/bin/env python3
"""Independent numpy forward of a llama GGUF (float64), for parity checks of the Swift model.

Reads the GGUF with the `gguf` package (its own dequantizers), tokenizes with Hugging Face
`tokenizers` rebuilt from the file's vocabulary, and writes golden values:

    pip install gguf tokenizers numpy
    python3 ops/reference/llama_reference.py MODEL.gguf Tests/AttuneModelTests/Golden

- smollm2_logprobs.f32 : log-softmax of every position of PROMPT (float32, [positions, vocab])
- smollm2_reference.json : prompt ids, greedy continuation, perplexities of TEXT and its shuffle
"""
import json
import os
import random
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

sys.path.insert(0, os.path.dirname(__file__))
from tokenizer_golden import build_tokenizer  # noqa: E402

PROMPT = "The capital of France is"
TEXT = "The capital of France is Paris. It is known for the Eiffel Tower and its museums."


class Llama:
    def __init__(self, path):
        r = GGUFReader(path)
        f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.ggml.")}
        self.layers = f["llama.block_count"]
        self.dim = f["llama.embedding_length"]
        self.heads = f["llama.attention.head_count"]
        self.kv_heads = f["llama.attention.head_count_kv"]
        self.head_dim = self.dim // self.heads
        self.eps = f["llama.attention.layer_norm_rms_epsilon"]
        self.base = f["llama.rope.freq_base"]
        self.w = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
            [int(d) for d in reversed(t.shape)]) for t in r.tensors}
        self.out = self.w.get("output.weight", self.w["token_embd.weight"])

    def norm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, heads):
        t, hd = x.shape[0], self.head_dim
        x = x.reshape(t, heads, hd // 2, 2)
        inv = self.base ** (-np.arange(0, hd, 2) / hd)
        ang = np.arange(t)[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., 0], x[..., 1]
        return np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(t, heads * hd)

    def logits(self, ids):
        w, t, hd = self.w, len(ids), self.head_dim
        x = w["token_embd.weight"][ids]
        mask = np.triu(np.full((t, t), -np.inf), 1)
        for i in range(self.layers):
            p = f"blk.{i}."
            h = self.norm(x, w[p + "attn_norm.weight"])
            q = self.rope(h @ w[p + "attn_q.weight"].T, self.heads).reshape(t, self.heads, hd)
            k = self.rope(h @ w[p + "attn_k.weight"].T, self.kv_heads).reshape(t, self.kv_heads, hd)
            v = (h @ w[p + "attn_v.weight"].T).reshape(t, self.kv_heads, hd)
            rep = self.heads // self.kv_heads
            k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = np.einsum("hts,shd->thd", s, v).reshape(t, self.dim)
            x = x + a @ w[p + "attn_output.weight"].T
            h = self.norm(x, w[p + "ffn_norm.weight"])
            g, u = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
        return self.norm(x, w["output_norm.weight"]) @ self.out.T


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def perplexity(model, ids):
    lp = log_softmax(model.logits(ids))
    nll = -np.mean([lp[i, ids[i + 1]] for i in range(len(ids) - 1)])
    return float(np.exp(nll))


def main(path, out_dir):
    tok = build_tokenizer(path, special=True)
    model = Llama(path)
    ids = tok.encode(PROMPT, add_special_tokens=False).ids
    lp = log_softmax(model.logits(ids)).astype(np.float32)
    lp.tofile(os.path.join(out_dir, "smollm2_logprobs.f32"))
    greedy = list(ids)
    for _ in range(8):
        greedy.append(int(np.argmax(model.logits(greedy)[-1])))
    words = TEXT.split(" ")
    random.Random(0).shuffle(words)
    shuffled = " ".join(words)
    text_ids = tok.encode(TEXT, add_special_tokens=False).ids
    shuffled_ids = tok.encode(shuffled, add_special_tokens=False).ids
    result = {
        "generator": "ops/reference/llama_reference.py (numpy float64 forward)",
        "prompt": PROMPT, "prompt_ids": ids,
        "logprobs_shape": list(lp.shape),
        "greedy_ids": greedy[len(ids):], "greedy_text": tok.decode(greedy[len(ids):]),
        "text": TEXT, "text_ids": text_ids, "text_perplexity": perplexity(model, text_ids),
        "shuffled": shuffled, "shuffled_ids": shuffled_ids, "shuffled_perplexity": perplexity(model, shuffled_ids),
    }
    with open(os.path.join(out_dir, "smollm2_reference.json"), "w") as fh:
        json.dump(result, fh, indent=1)
        fh.write("\n")
    print(json.dumps({k: v for k, v in result.items() if "ids" not in k}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
