#!/usr/bin/env bash
# Installs the Python peer used by ops/peft/*.py: CPU torch (local wheel folder) + PEFT stack from PyPI.
# Idempotent: pip skips what is already satisfied.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pip install --no-deps torch==2.13.0+cpu
pip install -c "$here/constraints.txt" \
  filelock 'typing-extensions>=4.10' 'setuptools>=77.0.3' 'sympy>=1.13.3' networkx jinja2 fsspec \
  peft transformers safetensors gguf numpy
python -c 'import torch, peft, transformers, safetensors, gguf; print("torch", torch.__version__, "peft", peft.__version__, "transformers", transformers.__version__)'
