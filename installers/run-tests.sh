#!/usr/bin/env bash
# Runs every check CI runs: lint, format, types, architecture contracts, then the whole pytest suite
# offscreen, inside a private D-Bus session with a real, unlocked gnome-keyring (the OS keyring),
# then builds the one-folder bundle and smoke-tests it.
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
# The window tests run in a pytest process of their own: Qt state left behind by one test
# (objects the garbage collector frees later, on any thread) must not crash an unrelated one.
if (($#)); then
  suites=("$*")
else
  suites=("tests --ignore-glob=tests/test_ui_*.py" "tests/test_ui_*.py")
fi
status=0
for suite in "${suites[@]}"; do
  echo "==> pytest $suite (offscreen, real keyring)"
  # shellcheck disable=SC2086  # the suite is a list of words on purpose
  HOME="$TEST_HOME" XDG_DATA_HOME="$TEST_HOME/.local/share" timeout 4800 dbus-run-session -- bash -c '
    echo -n nexus-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    exec "$0" -m pytest -p no:cacheprovider "$@"
  ' "$BIN/python" $suite || status=$?
done
# The whole run (no suites named) ends with the bundle: built, then run as a user without Python
# would run it (installers/bundle/smoke.sh).  NEXUS_SKIP_BUNDLE=1 leaves it out of a local run.
if ((!$#)) && [[ "${NEXUS_SKIP_BUNDLE:-}" != "1" ]]; then
  echo "==> bundle: build and smoke test"
  build=()
  [[ "${NEXUS_SKIP_TRAINER:-}" == "1" ]] && build+=(--no-trainer)  # setup.sh made no .venv-train
  { bash "$ROOT/installers/bundle/build.sh" "${build[@]}" && bash "$ROOT/installers/bundle/smoke.sh"; } || status=1
fi
exit "$status"
