"""Process start to main window shown: NEXUS Desktop against a bare PySide6 window, same run.

Each side is started as a fresh process, alternately, several times; the median wall time from
spawning the process until its window is shown and its first events (show, paint) are processed
is compared.  NEXUS's window is the full one: sidebar, chat view and composer built.  The core,
the database and the model load after this point, in the background.  Target: ratio ≤ 1.5.

    .venv/bin/python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BARE_WINDOW = """
import sys, time
from PySide6.QtWidgets import QApplication, QMainWindow

app = QApplication(sys.argv)
window = QMainWindow()
window.resize(1280, 800)
window.show()
app.processEvents()
print("NEXUS_SHOWN", time.time(), flush=True)
import os; os._exit(0)
"""


def time_to_shown(command: list[str], env: dict[str, str]) -> float:
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    for line in result.stdout.splitlines():
        if line.startswith("NEXUS_SHOWN"):
            return float(line.split()[1]) - started
    raise RuntimeError(f"{command[-1]!r} never showed a window:\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="nexus-startup-")
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        "NEXUS_DATA_DIR": data_dir,
        "NEXUS_STARTUP_PROBE": "1",
    }
    app_command = [sys.executable, "-m", "nexus_desktop"]
    bare_command = [sys.executable, "-c", BARE_WINDOW]

    # The first start creates the database and imports cold; measure warm starts like a user's 2nd.
    time_to_shown(app_command, env)
    time_to_shown(bare_command, env)

    app_times: list[float] = []
    bare_times: list[float] = []
    for _ in range(args.runs):
        bare_times.append(time_to_shown(bare_command, env))
        app_times.append(time_to_shown(app_command, env))

    app_median = statistics.median(app_times)
    bare_median = statistics.median(bare_times)
    print(f"bare PySide6 window: median {bare_median * 1000:.0f} ms  (runs: {_ms(bare_times)})")
    print(f"NEXUS Desktop:       median {app_median * 1000:.0f} ms  (runs: {_ms(app_times)})")
    print(f"startup ratio (NEXUS / bare, target <= 1.5): {app_median / bare_median:.2f}")


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


if __name__ == "__main__":
    main()
