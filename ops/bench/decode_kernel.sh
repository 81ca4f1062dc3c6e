#!/usr/bin/env bash
# Quantized decode's kernels (the Q4_1 layers and the Q8_0 head, row-major and interleaved) on
# one thread, weights streamed from memory vs the same work from
# cache (ops/bench/decode_kernel.c): equal rates mean the core's instructions, not memory
# bandwidth, bound decode on this CPU. Compare with the one-thread read rate of
# `attune bench machine` (ATTUNE_THREADS=1).
#   ops/bench/decode_kernel.sh
#   ATTUNE_ISA=avx2 ops/bench/decode_kernel.sh   (the AVX2 path on an AVX-512 machine)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
K=Sources/CAttuneKernels
OUT="${TMPDIR:-/tmp}/attune-bench-decode-kernel"
clang -O3 -I"$K/include" -I"$K" ops/bench/decode_kernel.c "$K/quant_dot.c" "$K/quant_dot_x8.c" "$K/cpu_isa.c" -o "$OUT" -lm
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); features:" \
  $(for f in avx2 fma avx512f avx512bw avx512vl avx512_vnni; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done)
"$OUT"
