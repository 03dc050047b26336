#!/usr/bin/env bash
# Runs every check CI runs: lint, format, types, architecture contracts, then the whole pytest suite
# offscreen, inside a private D-Bus session with a real, unlocked gnome-keyring (the OS keyring).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/.venv/bin"

echo "==> ruff";          "$BIN/ruff" check . && "$BIN/ruff" format --check .
echo "==> mypy";          "$BIN/mypy"
echo "==> import-linter"; "$BIN/lint-imports"

# A throwaway HOME keeps the test keyring and data away from the user's own.
TEST_HOME="$(mktemp -d)"
trap 'rm -rf "$TEST_HOME"' EXIT
export QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1 NEXUS_TEST_HOME="$TEST_HOME"
echo "==> pytest (offscreen, real keyring)"
HOME="$TEST_HOME" XDG_DATA_HOME="$TEST_HOME/.local/share" timeout 4800 dbus-run-session -- bash -c '
  echo -n nexus-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  exec "$0" -m pytest -p no:cacheprovider "$@"
' "$BIN/python" "$@"
