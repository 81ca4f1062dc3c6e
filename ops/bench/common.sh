# Sourced by the benchmark scripts: repository root as working directory, the base model in
# $MODEL (from $ATTUNE_MODEL or the fetch cache), and a release build of attune.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
MODEL="${ATTUNE_MODEL:-${ATTUNE_HOME:-$HOME/.cache/attune}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[ -f "$MODEL" ] || { echo "no model at $MODEL: run 'attune model fetch'" >&2; exit 1; }
[ -n "${ATTUNE_BIN:-}" ] || swift build -c release --product attune >/dev/null   # ATTUNE_BIN: use that binary instead
