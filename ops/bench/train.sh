#!/usr/bin/env bash
# Side-by-side LoRA training benchmark: Attune QLoRA (4-bit base) and LoRA (fp32 base) against
# PyTorch + PEFT (fp32, same GGUF through transformers), rank 8 on q,k,v,o,gate,up,down,
# seq 256 × batch 8, 2 threads, sides alternated ROUNDS times; medians of tokens/s, peak RSS,
# and Attune's useful GFLOP/s as a share of the sgemm rate measured in the same process.
# "-native-blas" rows run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (OpenBLAS then uses
# this CPU's AVX-512 kernels, as PyTorch's own BLAS does); ops/bench/model.sh checks that
# the model still computes the reference perplexity with them.
#   ops/bench/train.sh [ROUNDS]      (needs: ops/peft/install.sh; ATTUNE_BIN runs another attune binary)
python3 -c "import torch, peft, transformers" 2>/dev/null || { echo "PyTorch peer missing: ops/peft/install.sh" >&2; exit 1; }
source "$(dirname "$0")/common.sh"
ROUNDS="${1:-3}"
A="${ATTUNE_BIN:-.build/release/attune}"
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
  "$A" bench train --model "$MODEL" --method qlora --steps 3 >>"$out"
  (cd ops/peft && python3 train_bench.py --model "$MODEL" --steps 3 --threads 2) >>"$out"
  "$A" bench train --model "$MODEL" --method lora --steps 3 >>"$out"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$A" bench train --model "$MODEL" --method qlora --steps 3 \
    | sed 's/"engine":"attune-qlora"/"engine":"attune-qlora-native-blas"/' >>"$out"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$A" bench train --model "$MODEL" --method lora --steps 3 \
    | sed 's/"engine":"attune-lora"/"engine":"attune-lora-native-blas"/' >>"$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
engines = {}
for r in rows:
    engines.setdefault(r["engine"], []).append(r)
med = lambda v, k: statistics.median(x[k] for x in v) if k in v[0] else float("nan")
peer = med(engines["pytorch-peft"], "tokens_per_s")
print(f"{'engine':16} {'tokens/s':>9} {'vs PEFT':>8} {'peak RSS MB':>12} {'useful GFLOP/s':>15} {'sgemm GFLOP/s':>14} {'utilization':>12}")
for e, v in engines.items():
    t = med(v, "tokens_per_s")
    print(f"{e:16} {t:9.1f} {t / peer:7.2f}x {med(v, 'peak_rss_mb'):12.0f} {med(v, 'useful_gflops'):15.1f} "
          f"{med(v, 'sgemm_gflops'):14.1f} {med(v, 'utilization'):12.2f}")
print(f"(medians of {len(engines['pytorch-peft'])} alternating rounds; seq 256, batch 8, rank 8, 3 timed steps each)")
PY
rm -f "$out"
