#!/usr/bin/env bash
# Sets up the fine-tuning environment: a SEPARATE virtualenv, .venv-train, for the trainer subprocess
# (`.venv-train/bin/python -m training.train JOB.json`).  The app's own .venv never gets torch.
#
#   bash installers/setup-trainer.sh
#
# Safe to run again: each step is skipped when already done.  Run installers/setup.sh first: the
# trainer reuses the llama.cpp wheel that it built (to check exported adapters through llama.cpp).
#
# CPU (default): torch 2.13.0 CPU build + PEFT; about 1.5 GB.
# NVIDIA GPU (nvidia-smi present, or NEXUS_TRAIN_CUDA=1): the CUDA torch build from the registry
# (several GB) plus Unsloth for 4-bit QLoRA.  Untested on this project's machines (none has a GPU);
# the trainer falls back to PEFT on CUDA when Unsloth cannot be imported.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-train"
PY="$VENV/bin/python"
TORCH_VERSION="2.13.0"
LLAMA_VERSION="0.3.36"
WHEEL_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/nexus-desktop/wheels"
say() { printf '\033[1;35m==>\033[0m %s\n' "$*"; }
SETUP_LOG="${TMPDIR:-/tmp}/nexus-setup-trainer.log"
# pip is chatty: keep its output in a log, and show it only on failure.
pip_install() {
  if ! "$PY" -m pip install --disable-pip-version-check "$@" >>"$SETUP_LOG" 2>&1; then
    tail -n 30 "$SETUP_LOG" >&2
    echo "Installing $* failed (full log: $SETUP_LOG)" >&2
    return 1
  fi
}

CUDA=0
if [[ "${NEXUS_TRAIN_CUDA:-}" == "1" ]] || { [[ "${NEXUS_TRAIN_CUDA:-}" != "0" ]] && command -v nvidia-smi >/dev/null 2>&1; }; then
  CUDA=1
fi

# 1. The virtualenv ---------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if [[ ! -x "$PY" ]]; then
  say "Creating the trainer virtualenv in .venv-train"
  "$PYTHON" -m venv "$VENV"
  pip_install --upgrade pip wheel
fi

# 2. torch FIRST, so that later requirements keep it (a bare `torch` pulls GBs of CUDA) ------------
if ! "$PY" -c "import torch, sys; sys.exit(not torch.__version__.startswith('$TORCH_VERSION'))" 2>/dev/null; then
  if ((CUDA)); then
    say "Installing torch $TORCH_VERSION with CUDA (several GB)"
    pip_install "torch==$TORCH_VERSION"
  else
    say "Installing torch $TORCH_VERSION (CPU build)"
    # A machine without a local CPU wheel can point TORCH_INDEX_URL at PyTorch's CPU-only index.
    pip_install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION+cpu" 2>/dev/null \
      || pip_install "torch==$TORCH_VERSION"
  fi
fi

# 3. The training libraries (pinned in training/requirements.txt) ------------------------------
stamp="$VENV/.nexus-trainer-installed"
if [[ ! -f "$stamp" || training/requirements.txt -nt "$stamp" ]]; then
  say "Installing transformers, peft, accelerate, gguf"
  pip_install -r training/requirements.txt
  touch "$stamp"
fi

# 4. llama.cpp, to check that the exported adapter gives the same answers there ------------------
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$LLAMA_VERSION')" 2>/dev/null; then
  wheel="$(ls "$WHEEL_CACHE"/cpu/llama_cpp_python-"$LLAMA_VERSION"-*.whl "$WHEEL_CACHE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -n "$wheel" ]]; then
    say "Installing llama.cpp from the cached wheel"
    pip_install "$wheel"
  else
    say "Building llama.cpp (CPU) — about 10 minutes on 2 cores, once per machine"
    mkdir -p "$WHEEL_CACHE/cpu"
    "$PY" -m pip wheel -q --no-deps -w "$WHEEL_CACHE/cpu" "llama-cpp-python==$LLAMA_VERSION" >>"$SETUP_LOG" 2>&1
    pip_install "$WHEEL_CACHE"/cpu/llama_cpp_python-"$LLAMA_VERSION"-*.whl
  fi
fi

# 5. Unsloth on NVIDIA machines ------------------------------------------------------------------
if ((CUDA)) && ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('unsloth') is None)"; then
  say "Installing Unsloth (4-bit QLoRA on CUDA)"
  # Unsloth pins its own transformers/trl; if it cannot install, the trainer uses PEFT on CUDA.
  pip_install "unsloth" "unsloth_zoo" "bitsandbytes" || say "Unsloth did not install; training will use PEFT"
fi

"$PY" -c "import torch, transformers, peft, gguf, llama_cpp; print('trainer ready: torch', torch.__version__, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available())"
