"""The ``nexus-desktop`` entry point: Qt application, qasync loop, window first, everything else after.

Start-up order matters for how fast the window appears: only Qt, the theme and an empty main
window exist when it is shown.  The widgets are built right after (before the first paint), then
asyncio/qasync start, and the core (database, settings, characters), logging, the model list and
the model itself load in the background, off the Qt thread.
"""

from __future__ import annotations

import os
import sys
import time

from PySide6.QtWidgets import QApplication


def main(argv: list[str] | None = None) -> int:
    from nexus_desktop import APP_NAME
    from nexus_desktop.ui.main_window import MainWindow
    from nexus_desktop.ui.theme import app_icon, apply_theme

    # QT_QPA_PLATFORM (offscreen, xcb, wayland…) is read by Qt itself from the environment.
    app = QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("NEXUS")
    app.setDesktopFileName("nexus-desktop")
    # The tray may keep the app alive without a window; quitting is always explicit.
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app, icon=False)

    # Show the (empty, already dark) frame first; everything else fills it before its first paint.
    window = MainWindow(build=False)
    window.show()
    import asyncio

    import qasync

    from nexus_desktop.ui.lifecycle import Application, install_quit_signals

    window.build_ui()
    app.setWindowIcon(app_icon())
    if os.environ.get("NEXUS_STARTUP_PROBE"):
        # benchmarks/startup.py: the built window has been shown and painted; report and leave.
        app.processEvents()
        print("NEXUS_SHOWN", time.time(), flush=True)
        os._exit(0)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    application = Application(app, window)
    notifier = install_quit_signals(app, application.quit)
    with loop:
        loop.call_soon(application.start_soon)
        loop.run_until_complete(application.finished.wait())
    del notifier
    return application.exit_code


if __name__ == "__main__":
    sys.exit(main())
