#!/usr/bin/env bash
# Serving benchmark, side by side in one run (`attune bench serve` on the real model, rank-8
# LoRA on all seven projections, tenants stacked on a domain adapter, greedy, 2 threads):
#   - aggregate decode tok/s of N concurrent requests on N different tenant adapters, vs the
#     same N on one adapter, vs the N one after another, vs llama.cpp serving one stream
#     (llama-cpp-python, same GGUF, same prompt and output lengths), and the N on N adapters
#     held in half precision instead of serve's default 8 bits, alternated ROUNDS times;
#     the aggregate as a share of cblas_sgemm's rate measured in the same process;
#   - first-token and inter-token latency at 1, 8 and N concurrent streams;
#   - time from an adapter.updated event to the first request admitted on that version;
#   - peak RSS with 1, 100 and 1,000 cached adapters (one process each).
#   ops/bench/serve.sh [ROUNDS] [N] [WEIGHTS]   (needs: pip install llama-cpp-python==0.3.36 numpy)
# WEIGHTS is the base model's weight mode for every Attune phase: quantized (serve's default:
# 8-bit activations through the integer kernels, as llama.cpp) or dense (fp32 activations).
python3 -c "import llama_cpp" 2>/dev/null || { echo "llama.cpp peer missing: pip install llama-cpp-python==0.3.36" >&2; exit 1; }
source "$(dirname "$0")/common.sh"
ROUNDS="${1:-3}"
N="${2:-32}"
WEIGHTS="${3:-quantized}"
NEW=64
PROMPT=16
A="${ATTUNE_BIN:-.build/release/attune}"
out=$(mktemp)
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores; features:" \
  $(for f in avx2 fma avx512f avx512_vnni; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done) \
  "; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; weights $WEIGHTS"
for r in $(seq "$ROUNDS"); do
  "$A" bench serve --model "$MODEL" --weights "$WEIGHTS" --phase throughput --adapters "$N" --new-tokens "$NEW" --prompt-tokens "$PROMPT" >>"$out"
  python3 ops/bench/llamacpp_model.py --model "$MODEL" --prompt-tokens "$PROMPT" --new-tokens "$NEW" >>"$out"
  "$A" bench serve --model "$MODEL" --weights "$WEIGHTS" --phase throughput --adapters "$N" --concurrency "$N" \
    --new-tokens "$NEW" --prompt-tokens "$PROMPT" --adapter-precision half | grep "\"scenario\":\"$N adapters\"" >>"$out"
done
"$A" bench serve --model "$MODEL" --weights "$WEIGHTS" --phase swap --swaps 100 >>"$out"
for c in 1 100 1000; do "$A" bench serve --model "$MODEL" --weights "$WEIGHTS" --phase memory --cached "$c" >>"$out"; done
python3 - "$out" "$N" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
n = sys.argv[2]
med = lambda xs: statistics.median(xs)
thr = {}
for r in rows:
    if r.get("kind") == "throughput":
        half = " (half-precision weights)" if r.get("adapter_precision") == "half" else ""
        thr.setdefault(r["scenario"] + half, []).append(r)
llama = med([r["decode_tok_s"] for r in rows if r.get("engine") == "llama.cpp"])
mixed = med([r["decode_tok_s"] for r in thr[f"{n} adapters"]])
print(f"{'scenario':22} {'decode tok/s':>12} {'vs mixed':>9} {'share of sgemm':>15} {'TTFT p50 ms':>12} {'ITL p50 ms':>11} {'ITL p95 ms':>11}")
for name, rs in thr.items():
    rate = med([r["decode_tok_s"] for r in rs])
    print(f"{name:22} {rate:12.1f} {mixed/rate:8.2f}x {med([r['share_of_sgemm'] for r in rs]):15.2f} "
          f"{med([r['ttft_ms_p50'] for r in rs]):12.1f} {med([r['itl_ms_p50'] for r in rs]):11.1f} {med([r['itl_ms_p95'] for r in rs]):11.1f}")
print(f"{'llama.cpp, 1 stream':22} {llama:12.1f} {mixed/llama:8.2f}x")
same = med([r["decode_tok_s"] for r in thr["1 adapter"]]); seq = med([r["decode_tok_s"] for r in thr["sequential"]])
sg = med([r["sgemm_gflop_s"] for r in thr[f"{n} adapters"]])
print(f"\n{n} adapters vs 1 adapter: {mixed/same:.1%} (goal ≥ 90%); vs one after another: {mixed/seq:.2f}x (goal ≥ 4x); "
      f"vs llama.cpp one stream: {mixed/llama:.2f}x (goal ≥ 6x); share of sgemm ({sg:.0f} GFLOP/s): "
      f"{med([r['share_of_sgemm'] for r in thr[f'{n} adapters']]):.0%} (goal ≥ 70%)")
for r in rows:
    if r.get("kind") == "swap":
        print(f"\nevent → first request on the new version ({r['swaps']} swaps): p50 {r['ms_p50']:.1f} ms, p95 {r['ms_p95']:.1f} ms, "
              f"p99 {r['ms_p99']:.1f} ms, max {r['ms_max']:.1f} ms (goal p50 ≤ 100 ms, p99 ≤ 1 s)")
print()
for r in rows:
    if r.get("kind") == "memory":
        print(f"{r['cached']:5d} cached adapters ({r['adapter_mb_each']:.1f} MB file each): RSS {r['rss_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB, "
              f"{r['mb_per_adapter']:.1f} MB per adapter over the {r['rss_mb_before_adapters']:.0f} MB before")
print(f"(throughput: medians of {len(thr[f'{n} adapters'])} alternating rounds)")
PY
rm -f "$out"
