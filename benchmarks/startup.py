"""Process start to a chat screen that takes typing: NEXUS Desktop against a bare PySide6 window.

Each side starts as a fresh process, alternately, several times; medians are compared.

- NEXUS: the real start (``python -m nexus_desktop``'s ``main()``, unchanged) until the chat screen
  is built and painted and the composer is enabled and has focus; then a key press sent to it must
  be accepted, show up as text, and be painted.  That is the first moment a user's typing lands
  ("typed"; the app takes typing before the core has opened the last chat and queues a Send until
  then).  The run goes on until the core has opened the last chat ("opened"), and fails unless the
  typed text is still in the box, once.  The model keeps loading in the background after this point,
  as it does for a user.
- Bare: a QMainWindow holding a QPlainTextEdit, shown and painted ("shown"), then the same key
  press accepted and painted ("typed").

Target: NEXUS typed <= 1.5x the bare window.  Also printed against the bare window merely shown.

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

# Sends "h" to ``box`` once it is enabled and focused; prints NEXUS_TYPED when that has been painted.
TYPE_PROBE = """
import os, sys, time
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

def _leave(line, code):
    print(line, flush=True)
    try:
        import psutil
        for child in psutil.Process().children(recursive=True):
            child.kill()
    except ImportError:
        pass
    os._exit(code)

EXIT_WHEN = {"typed"}  # the marks after which the process reports and leaves
_seen = set()

def _mark(name):
    print(f"NEXUS_{name.upper()} {time.time()}", flush=True)
    _seen.add(name)
    if EXIT_WHEN <= _seen:
        _leave("NEXUS_DONE 0", 0)

# Marks "typed" once the text box has painted the key: the paint event is handed on to the box
# here (its own handlers paint it, then the mark), not marked by a timer, which fires only at the
# process's next turn of event processing (in NEXUS that came after loading asyncio).
class _Painted(QObject):

    def eventFilter(self, watched, event):
        if event.type() != QEvent.Type.Paint:
            return False
        watched.removeEventFilter(self)
        QApplication.sendEvent(watched, event)  # the box paints now (this filter is gone)
        _mark("typed")
        return True  # painted already

def type_into(box, window):
    if not box.isEnabled() or window.focusWidget() is not box:
        _leave(f"NEXUS_FAILED the text box is not enabled and focused ({box.isEnabled()})", 1)
    box._painted = _Painted(box)
    box.viewport().installEventFilter(box._painted)
    key = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_H, Qt.KeyboardModifier.NoModifier, "h")
    QApplication.sendEvent(box, key)
    if not key.isAccepted() or box.toPlainText() != "h":
        _leave(f"NEXUS_FAILED the key press was not taken: {box.toPlainText()!r}", 1)
"""

BARE_WINDOW = (
    TYPE_PROBE
    + """
from PySide6.QtWidgets import QMainWindow, QPlainTextEdit
app = QApplication(sys.argv)
window = QMainWindow()
window.resize(1280, 800)
box = QPlainTextEdit()
window.setCentralWidget(box)
window.show()
box.setFocus()
app.processEvents()
print("NEXUS_SHOWN", time.time(), flush=True)
type_into(box, window)
app.exec()
"""
)

NEXUS_APP = (
    TYPE_PROBE
    + """
from nexus_desktop.ui.main_window import MainWindow  # main() imports it first thing too

EXIT_WHEN = {"typed", "opened"}
_build = MainWindow.build_ui

def _build_ui(window):
    _build(window)
    box = window.chat_view.composer.input

    def try_type():  # the first moment the composer is enabled and focused: after build, or at open
        if not hasattr(box, "_painted") and box.isEnabled() and window.focusWidget() is box:
            type_into(box, window)

    QTimer.singleShot(0, try_type)  # after main() has finished its start-up steps for the screen
    opened = window.chat_view.open_character

    async def open_character(*args, **kwargs):
        await opened(*args, **kwargs)
        try_type()
        if not hasattr(box, "_painted"):
            _leave("NEXUS_FAILED the chat opened but the text box is not enabled and focused", 1)
        if box.toPlainText() != "h":  # what was typed before the chat opened is still there, once
            _leave(f"NEXUS_FAILED the typed text changed when the chat opened: {box.toPlainText()!r}", 1)
        _mark("opened")

    window.chat_view.open_character = open_character

MainWindow.build_ui = _build_ui
from nexus_desktop.ui.app import main
sys.exit(main())
"""
)


def time_to_marks(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Seconds from spawning ``command`` to each ``NEXUS_<MARK> <time>`` line it prints."""
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    marks = {
        line.split()[0].removeprefix("NEXUS_").lower(): float(line.split()[1]) - started
        for line in result.stdout.splitlines()
        if line.startswith(("NEXUS_SHOWN", "NEXUS_TYPED", "NEXUS_OPENED"))
    }
    if "typed" not in marks:
        raise RuntimeError(f"no typing was painted:\n{result.stdout[-1000:]}\n{result.stderr[-2000:]}")
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    env = {
        **os.environ,
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        "NEXUS_DATA_DIR": tempfile.mkdtemp(prefix="nexus-startup-"),
    }
    env.pop("NEXUS_STARTUP_PROBE", None)  # the app must run its whole start, not the probe's early exit
    # Installed apps start from compiled bytecode; make sure ours exists even where
    # PYTHONDONTWRITEBYTECODE is set (as on CI machines), or the first import compiles it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "nexus_desktop")], check=True)
    app_command = [sys.executable, "-c", NEXUS_APP]
    bare_command = [sys.executable, "-c", BARE_WINDOW]

    # The first start creates the database and imports cold; measure warm starts like a user's 2nd.
    time_to_marks(app_command, env)
    time_to_marks(bare_command, env)

    shown: list[float] = []
    bare: list[float] = []
    nexus: list[float] = []
    opened: list[float] = []
    for run in range(args.runs):
        sides = [(bare_command, bare), (app_command, nexus)]
        for command, typed in sides if run % 2 == 0 else reversed(sides):
            marks = time_to_marks(command, env)
            typed.append(marks["typed"])
            if command is bare_command:
                shown.append(marks["shown"])
            else:
                opened.append(marks["opened"])

    print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} starts each, alternating")
    print(f"bare window shown:        median {_ms(shown)}  (runs: {_runs(shown)})")
    print(f"bare window, key painted: median {_ms(bare)}  (runs: {_runs(bare)})")
    print(f"NEXUS chat, key painted:  median {_ms(nexus)}  (runs: {_runs(nexus)})")
    print(f"NEXUS last chat opened:   median {_ms(opened)}  (runs: {_runs(opened)})")
    print(f"NEXUS typed / bare shown: {statistics.median(nexus) / statistics.median(shown):.2f}")
    ratio = statistics.median(nexus) / statistics.median(bare)
    print(f"startup ratio (NEXUS typed / bare typed, target <= 1.5): {ratio:.2f}")


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


if __name__ == "__main__":
    main()
