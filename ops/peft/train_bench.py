"""PyTorch + PEFT LoRA training throughput peer for Attune (same GGUF, fp32, CPU)."""
import argparse
import json
import resource
import time

import torch
from peft import LoraConfig, get_peft_model

from base import DEFAULT_GGUF, TARGETS, load_model

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--model", default=DEFAULT_GGUF)
p.add_argument("--seq", type=int, default=256)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--steps", type=int, default=3, help="timed steps")
p.add_argument("--warmup-steps", type=int, default=1)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
base = load_model(args.model)
lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
model = get_peft_model(base, lora).train()
opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
data = torch.Generator().manual_seed(args.seed)


def step():
    ids = torch.randint(0, base.config.vocab_size, (args.batch, args.seq), generator=data)
    loss = model(input_ids=ids, labels=ids).loss  # next-token loss on every position
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


for _ in range(args.warmup_steps):
    step()
start, cpu_start = time.perf_counter(), time.process_time()
for _ in range(args.steps):
    step()
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start

print(json.dumps({
    "engine": "pytorch-peft",
    "tokens_per_s": round(args.steps * args.batch * args.seq / elapsed, 2),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "seq": args.seq, "batch": args.batch, "rank": 8, "steps": args.steps,
    # CPU time over wall time x threads during the timed steps: well below 1 means the shared machine was busy
    "cpu_util": round(cpu / (elapsed * args.threads), 2),
}))
