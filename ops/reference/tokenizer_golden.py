#!/usr/bin/env python3
"""Golden token ids from an independent tokenizer (Hugging Face `tokenizers`).

The BPE is rebuilt from the GGUF's own vocabulary and merges with the `smollm` pre-tokenizer
(Digits(individual) then ByteLevel without prefix space), so the Swift tokenizer is compared
with a second implementation of the same spec.

    pip install gguf tokenizers
    python3 ops/reference/tokenizer_golden.py MODEL.gguf > Tests/AttuneTokenizerTests/Golden/smollm2_tokens.json
"""
import json
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

TEXTS = [
    "The capital of France is Paris.",
    "Hello world",
    " leading space and trailing space ",
    "don't won't it's we're they've I'm you'll he'd",
    "DON'T SHOUT'S",
    "Numbers: 3.14159, 2026-11-29, 1,000,000 and 42nd.",
    "x=a+b*c; if (x >= 10) { return -1; }",
    "def f(x):\n    return x ** 2\n\n\nprint(f(12))",
    "tabs\tand\nnewlines\r\n  mixed   spacing\n",
    "Ünïcödé çàfé naïve résumé",
    "日本語のテキストと中文文本",
    "Emoji: 😀👍🏽🇫🇷 family 👨‍👩‍👧‍👦",
    "Привет, мир! Γειά σου κόσμε",
    "١٢٣ ٤٥ Arabic digits and ² superscript ½ fractions Ⅻ",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "   ",
    "\n\n\n",
    "a\u00a0non-breaking\u2003em space",
    "''' quotes \"double\" `back`",
    "https://example.com/path?query=1&x=2#frag",
    "SELECT name, COUNT(*) FROM users WHERE age > 21 GROUP BY name;",
    "The Eiffel Tower is 330 metres tall!!! Really?!",
]


def build_tokenizer(path: str, special: bool) -> Tokenizer:
    """The GGUF's BPE as a `tokenizers` Tokenizer; with `special`, control tokens are parsed."""
    reader = GGUFReader(path)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    if special:
        tok.add_special_tokens([AddedToken(tokens[i], special=True) for i in range(len(tokens)) if types[i] == 3])
    return tok


def main(path: str) -> None:
    plain = build_tokenizer(path, special=False)
    tok = build_tokenizer(path, special=True)
    cases = []
    for text in TEXTS:
        cases.append({
            "text": text,
            "ids": plain.encode(text, add_special_tokens=False).ids,
            "ids_special": tok.encode(text, add_special_tokens=False).ids,
        })
    json.dump({"generator": "ops/reference/tokenizer_golden.py", "cases": cases}, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
