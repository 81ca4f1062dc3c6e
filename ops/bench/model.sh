#!/usr/bin/env bash
# Side-by-side model benchmark: Attune (quantized and dense weight modes) and llama.cpp
# (llama-cpp-python, 2 threads) on the same GGUF and prompt ids, alternated ROUNDS times;
# prints each engine's median prefill tok/s (256-token prompt), decode tok/s (128 tokens,
# batch 1) and peak RSS, and the ratios to llama.cpp.
# Every Attune row also reports the memory read bandwidth measured in the same process and
# decode's share of that bound (weight bytes per token × tokens/s ÷ bandwidth); the
# "-avx2-kernels" row holds the integer decode kernels to AVX2 (ATTUNE_ISA=avx2) to show the
# path an AVX2-only machine runs.
# Every Attune row also gives prefill's useful work (the layers' products, 2 × parameters per
# prompt token) as a share of cblas_sgemm's rate measured in the same process. The
# "-int8-prompts" row multiplies prompts with 8-bit activations through the decode kernels
# (`--prompt-activations int8`, llama.cpp's Q4 × Q8 arithmetic), so its share can pass 1.
# "-native-blas" rows run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, so OpenBLAS picks
# this CPU's own (AVX-512) kernels instead of the Haswell ones the machine pins for safety; the
# script first checks that the model still scores the reference text at perplexity 11.714.
#   ops/bench/model.sh [ROUNDS]      (needs: pip install llama-cpp-python==0.3.36 numpy)
python3 -c "import llama_cpp" 2>/dev/null || { echo "llama.cpp peer missing: pip install llama-cpp-python==0.3.36" >&2; exit 1; }
source "$(dirname "$0")/common.sh"
ROUNDS="${1:-3}"
A="${ATTUNE_BIN:-.build/release/attune}"
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores; features:" \
  $(for f in avx2 fma avx512f avx512bw avx512vl avx512_vnni; do grep -q -w "$f" /proc/cpuinfo && echo "$f"; done)
NATIVE=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
"${NATIVE[@]}" "$A" score --model "$MODEL" \
  --text "The capital of France is Paris. It is known for the Eiffel Tower and its museums." | tee /dev/stderr \
  | grep "perplexity 11.71" >/dev/null || { echo "native OpenBLAS kernels give a wrong result on this CPU" >&2; exit 1; }
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
  "$A" bench model --model "$MODEL" --weights quantized >>"$out"
  python3 ops/bench/llamacpp_model.py --model "$MODEL" >>"$out"
  ATTUNE_ISA=avx2 "$A" bench model --model "$MODEL" --weights quantized | sed 's/"engine":"attune-quantized"/"engine":"attune-quantized-avx2-kernels"/' >>"$out"
  "$A" bench model --model "$MODEL" --weights quantized --prompt-activations int8 >>"$out"
  "$A" bench model --model "$MODEL" --weights dense >>"$out"
  "${NATIVE[@]}" "$A" bench model --model "$MODEL" --weights quantized | sed 's/"engine":"attune-quantized"/"engine":"attune-quantized-native-blas"/' >>"$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
engines = {}
for r in rows:
    engines.setdefault(r["engine"], []).append(r)
keys = ("prefill_tok_s", "decode_tok_s", "peak_rss_mb", "read_gb_s", "decode_share_of_bound", "prefill_share_of_sgemm")
med = {e: {k: statistics.median(x[k] for x in v) if k in v[0] else None for k in keys} for e, v in engines.items()}
base = med["llama.cpp"]
print(f"{'engine':34} {'prefill tok/s':>14} {'decode tok/s':>13} {'peak RSS MB':>12} {'read GB/s':>10} {'decode/bound':>13} {'prefill/sgemm':>14}   vs llama.cpp (prefill, decode, memory)")
for e, m in med.items():
    bw = (f"{m['read_gb_s']:10.1f} {m['decode_share_of_bound']:13.2f} {m['prefill_share_of_sgemm']:14.2f}" if m["read_gb_s"]
          else f"{'':10} {'':13} {'':14}")
    print(f"{e:34} {m['prefill_tok_s']:14.1f} {m['decode_tok_s']:13.1f} {m['peak_rss_mb']:12.1f} {bw}   "
          f"{m['prefill_tok_s']/base['prefill_tok_s']:.2f}x, {m['decode_tok_s']/base['decode_tok_s']:.2f}x, {m['peak_rss_mb']/base['peak_rss_mb']:.2f}x")
print(f"(medians of {len(engines['llama.cpp'])} alternating rounds, each the best of 3 repeats)")
PY
rm -f "$out"
