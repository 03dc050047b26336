#!/usr/bin/env bash
# Builds NEXUS Desktop as a one-folder bundle that needs no Python where it runs, and the Linux
# tarball around it (an AppImage would need appimagetool, which is not on PyPI or Debian):
#
#   bash installers/bundle/build.sh               dist/NEXUS-Desktop/: nexus-desktop, nexus, SmolLM2,
#                                                 the built-in modules, and the trainer in trainer/
#                                                 (built from .venv-train: torch, PEFT, transformers)
#   bash installers/bundle/build.sh --no-trainer  the app alone (a quicker build; training stays off)
#
# -> dist/NEXUS-Desktop-linux-x86_64.tar.gz; on Windows installers/windows/nexus.iss packs the same
# folder.  Run installers/setup.sh first (it sets up .venv-train too).  Times on 2 cores: the app
# about 1-2 min, the trainer about 4 min, the tarball about 1 min.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TRAINER=1
case "${1:-}" in
  "") ;;
  --no-trainer) TRAINER=0 ;;
  *) echo "usage: $0 [--no-trainer]" >&2; exit 2 ;;
esac
say() { printf '\033[1;36m==>\033[0m %s\n' "$*"; }
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || { echo "Run bash installers/setup.sh --setup-only first: there is no .venv." >&2; exit 1; }
"$PY" -c "import PyInstaller" 2>/dev/null || "$PY" -m pip install -q --disable-pip-version-check -e ".[bundle]"
freeze() { "$1" -m PyInstaller --noconfirm --log-level WARN "${@:2}"; }

started=$SECONDS
say "Bundling the app into dist/NEXUS-Desktop"
freeze "$PY" --distpath dist --workpath build/pyinstaller installers/bundle/nexus.spec
# Install and uninstall scripts ride in the folder (the Linux tarball's way in and out).
cp installers/linux/install.sh installers/linux/uninstall.sh installers/linux/install-desktop-entry.sh \
  installers/linux/nexus-desktop.desktop.in dist/NEXUS-Desktop/
say "The app took $((SECONDS - started)) s"

if ((TRAINER)); then
  started=$SECONDS
  TRAIN_PY="$ROOT/.venv-train/bin/python"
  [[ -x "$TRAIN_PY" ]] || {
    echo "There is no .venv-train to build the trainer from: run bash installers/setup-trainer.sh, or build with --no-trainer." >&2
    exit 1
  }
  # The same PyInstaller as pyproject.toml's [bundle] extra: .venv-train is no install of the app.
  "$TRAIN_PY" -c "import PyInstaller" 2>/dev/null \
    || "$TRAIN_PY" -m pip install -q --disable-pip-version-check "pyinstaller>=6.10"
  say "Bundling the trainer into dist/NEXUS-Desktop/trainer"
  freeze "$TRAIN_PY" --distpath dist/NEXUS-Desktop --workpath build/pyinstaller-trainer installers/bundle/trainer.spec
  say "The trainer took $((SECONDS - started)) s"
fi

started=$SECONDS
say "Packing dist/NEXUS-Desktop-linux-x86_64.tar.gz"
tar -C dist -cf - NEXUS-Desktop | gzip -1 > dist/NEXUS-Desktop-linux-x86_64.tar.gz
say "Packed in $((SECONDS - started)) s: $(du -h dist/NEXUS-Desktop-linux-x86_64.tar.gz | cut -f1)"
