#!/usr/bin/env bash
# Dense-mode decode kernels on one thread and the model's matrix shapes (ops/bench/panels.c):
# register widening vs dot-form panels vs broadcast panels vs cblas_sgemm on the fp32 copy.
# The measurement behind the batch sizes at which each CPU path switches form:
# `DenseForms` (register widening up to `directMax` rows, broadcast panels from `broadcastMin`).
#   ops/bench/panels.sh [M …]          (default: 1 2 3 4 6 8 16 24 32 48 64 96 128 192)
#   ATTUNE_ISA=avx2 ops/bench/panels.sh   (the AVX2 path on an AVX-512 machine)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
K=Sources/CAttuneKernels
OUT="${TMPDIR:-/tmp}/attune-bench-panels"
clang -O3 -I"$K/include" -I"$K" ops/bench/panels.c "$K/panel_gemm.c" "$K/quant_dot.c" "$K/cpu_isa.c" -o "$OUT" -lopenblas -lm
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); features:" \
  $(for f in avx2 fma avx512f avx512bw avx512vl avx512_vnni; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done)
if [ $# -eq 0 ]; then set -- 1 2 3 4 6 8 16 24 32 48 64 96 128 192; fi
OPENBLAS_NUM_THREADS=1 "$OUT" "$@"
