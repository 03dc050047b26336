"""Process start to main window shown: NEXUS Desktop against a bare PySide6 window, same run.

Each side is started as a fresh process, alternately, several times; the median wall time from
spawning the process until its window is shown and painted (``show()`` then its first events
processed) is compared.  Two figures for NEXUS:

- shown: the main window's first frame, its panels in place (ui/skeleton.py).  Target: ≤ 1.5x.
- built: every widget of the chat screen built and painted, the point a user can type.

The core, the database and the model load after this point, in the background.

    .venv/bin/python benchmarks/startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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


def time_to_marks(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Seconds from spawning ``command`` to each ``NEXUS_<MARK> <time>`` line it prints."""
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    marks = {
        line.split()[0].removeprefix("NEXUS_").lower(): float(line.split()[1]) - started
        for line in result.stdout.splitlines()
        if line.startswith("NEXUS_")
    }
    if "shown" not in marks:
        raise RuntimeError(f"{command[-1]!r} never showed a window:\n{result.stderr[-2000:]}")
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="nexus-startup-")
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        "NEXUS_DATA_DIR": data_dir,
        "NEXUS_STARTUP_PROBE": "1",
    }
    # Installed apps start from compiled bytecode; make sure ours exists even where
    # PYTHONDONTWRITEBYTECODE is set (as on CI machines), or the first import compiles it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "nexus_desktop")], check=True)
    app_command = [sys.executable, "-m", "nexus_desktop"]
    bare_command = [sys.executable, "-c", BARE_WINDOW]

    # The first start creates the database and imports cold; measure warm starts like a user's 2nd.
    time_to_marks(app_command, env)
    time_to_marks(bare_command, env)

    bare: list[float] = []
    shown: list[float] = []
    built: list[float] = []
    for _ in range(args.runs):
        bare.append(time_to_marks(bare_command, env)["shown"])
        marks = time_to_marks(app_command, env)
        shown.append(marks["shown"])
        built.append(marks["built"])

    bare_median = statistics.median(bare)
    print(f"bare PySide6 window:        median {_ms(bare_median)}  (runs: {_runs(bare)})")
    print(f"NEXUS window shown:         median {_ms(statistics.median(shown))}  (runs: {_runs(shown)})")
    print(f"NEXUS chat screen built:    median {_ms(statistics.median(built))}  (runs: {_runs(built)})")
    print(f"built / bare (no target):   {statistics.median(built) / bare_median:.2f}")
    print(f"startup ratio (NEXUS shown / bare, target <= 1.5): {statistics.median(shown) / bare_median:.2f}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


if __name__ == "__main__":
    main()
