#!/usr/bin/env bash
# One serving decode step's tenant LoRA terms (ops/bench/lora_terms.c), f16 and int8 weights side by side: N adapters walked by
# THREADS threads, each product alone or loading the next adapter's arrays meanwhile (as the
# server walks them), against the same arithmetic from cache and the bare loads.
#   ops/bench/lora_terms.sh [N] [THREADS]
#   ATTUNE_ISA=scalar ops/bench/lora_terms.sh   (the portable path; AVX2 is the kernel's only SIMD path)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
K=Sources/CAttuneKernels
OUT="${TMPDIR:-/tmp}/attune-bench-lora-terms"
clang -O3 -pthread -I"$K/include" -I"$K" ops/bench/lora_terms.c "$K/lora_serving.c" "$K/cpu_isa.c" -o "$OUT" -lm
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); features:" \
  $(for f in avx2 fma f16c avx512f avx512_vnni; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done)
"$OUT" "${1:-32}" "${2:-2}"
