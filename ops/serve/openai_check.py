#!/usr/bin/env python3
"""Drives `attune serve` with the official OpenAI Python client (PyPI `openai`), as a user would.

    python3 ops/serve/openai_check.py --base-url http://127.0.0.1:PORT/v1 --model tenant/acme --pinned tenant/acme@1

Checks completions and chat, plain and streamed (with stream_options.include_usage), that a
stream's text equals the plain answer for the same greedy request, that every answer names the
adapter version that served it (body and x-attune-adapter header), pinned versions, the model
list (with its max_model_len), and that bad requests raise the client's typed errors (404
unknown model or version, 400 max_tokens out of range, 400 context_length_exceeded for a prompt
past max_model_len). Prints one JSON summary line; exits 1 with the failed check's message
otherwise.
"""
import argparse
import json
import sys

import openai


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True, help="an adapter name served at its latest version")
    p.add_argument("--pinned", required=True, help="NAME@VERSION of an existing version")
    p.add_argument("--prompt", default="Question 1?")
    a = p.parse_args()
    client = openai.OpenAI(base_url=a.base_url, api_key="unused", max_retries=0, timeout=300)
    summary = {}

    def check(condition, message):
        if not condition:
            raise AssertionError(message)

    # Completions, plain: text, usage, the served version in body and header.
    raw = client.completions.with_raw_response.create(model=a.model, prompt=a.prompt, max_tokens=8, temperature=0)
    completion = raw.parse()
    served = completion.model_extra["attune"]
    check(raw.headers["x-attune-adapter"] == completion.model == served["model"], "served version in header and body")
    check(served["model"].startswith(a.model + "@") and len(served["sha256"]) == 64, f"served by {served}")
    check(completion.choices[0].finish_reason in ("stop", "length"), "finish reason")
    check(completion.usage.completion_tokens <= 8 and completion.usage.prompt_tokens > 0, "usage")
    summary["completion"] = {"model": completion.model, "text": completion.choices[0].text}

    # The same request streamed: same text, usage chunk last.
    pieces, usage, finish = [], None, None
    for chunk in client.completions.create(model=a.model, prompt=a.prompt, max_tokens=8, temperature=0, stream=True,
                                           stream_options={"include_usage": True}):
        if chunk.choices:
            pieces.append(chunk.choices[0].text)
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    check("".join(pieces) == completion.choices[0].text, f"streamed {''.join(pieces)!r} != {completion.choices[0].text!r}")
    check(usage is not None and usage.completion_tokens == completion.usage.completion_tokens, "stream usage")
    check(finish == completion.choices[0].finish_reason, "stream finish reason")

    # Chat, plain and streamed.
    messages = [{"role": "user", "content": a.prompt}]
    chat = client.chat.completions.create(model=a.model, messages=messages, max_tokens=8, temperature=0, seed=3)
    check(chat.choices[0].message.role == "assistant", "chat role")
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=a.model, messages=messages, max_tokens=8, temperature=0, seed=3, stream=True) if c.choices)
    check(streamed == chat.choices[0].message.content, f"chat stream {streamed!r} != {chat.choices[0].message.content!r}")
    summary["chat"] = {"model": chat.model, "text": chat.choices[0].message.content}

    # A pinned version is served exactly.
    pinned = client.completions.create(model=a.pinned, prompt=a.prompt, max_tokens=4, temperature=0)
    check(pinned.model == a.pinned, f"pinned {a.pinned} served by {pinned.model}")
    summary["pinned"] = pinned.model

    # The model list names base and the adapter with its version.
    listed = {m.id: m for m in client.models.list().data}
    check("base" in listed and a.model in listed, f"models {sorted(listed)}")
    check(listed[a.model].model_extra["attune"]["version"] >= 1, "model card version")
    context = listed[a.model].model_extra["max_model_len"]
    check(isinstance(context, int) and context > 0, f"context length {context!r}")
    summary["models"] = sorted(listed)

    # Bad requests: typed client errors with OpenAI's error shape.
    errors = {}
    for label, kwargs, expected, code in [
        ("unknown model", dict(model="tenant/nobody", prompt="x"), openai.NotFoundError, "model_not_found"),
        ("unknown version", dict(model=a.model + "@999", prompt="x"), openai.NotFoundError, "model_not_found"),
        ("max_tokens 0", dict(model=a.model, prompt="x", max_tokens=0), openai.BadRequestError, "invalid_max_tokens"),
        ("too long", dict(model=a.model, prompt="word " * (context + 1), max_tokens=4), openai.BadRequestError, "context_length_exceeded"),
    ]:
        try:
            client.completions.create(**kwargs)
            raise AssertionError(f"{label}: no error")
        except expected as e:
            check(e.body.get("code") == code and e.body.get("message"), f"{label}: error body {e.body}")
            errors[label] = e.status_code
    summary["errors"] = errors
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"openai_check: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
