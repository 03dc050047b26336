"""The ``nexus-desktop`` entry point: Qt application, qasync loop, window first, everything else after.

Start-up order matters for how fast the window appears: only Qt, the theme and the main window's
empty panels exist when it is first painted.  The widgets replace the panels right after and are
painted, then asyncio/qasync start, and the core (database, settings, characters), logging, the
model list and the model itself load in the background, off the Qt thread.
"""

from __future__ import annotations

import gc
import os
import sys
import time

from PySide6.QtWidgets import QApplication

SMOKE_FLAG = "--smoke-test"


def main(argv: list[str] | None = None) -> int:
    # Until the event loop runs, start-up only creates objects that live on (modules, classes,
    # widgets): the ~70 cyclic collections it would trigger free nothing and delay the first
    # frame by 6-10 ms.  Collection is back on before the loop starts.
    gc.disable()
    from nexus_desktop import APP_NAME
    from nexus_desktop.ui.main_window import APP_PAGES, MainWindow
    from nexus_desktop.ui.theme import app_icon, apply_theme

    # QT_QPA_PLATFORM (offscreen, xcb, wayland…) is read by Qt itself from the environment.
    # Fusion comes from the command line: QApplication.setStyle() would cost ~10 ms (see theme).
    args = list(argv if argv is not None else sys.argv)
    smoke = SMOKE_FLAG in args  # installers/bundle/smoke.sh: start, load the model, quit
    args = [arg for arg in args if arg != SMOKE_FLAG]
    if not any(arg.startswith(("-style", "--style")) for arg in args):
        args += ["-style", "Fusion"]
    app = QApplication(args)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("NEXUS")
    app.setDesktopFileName("nexus-desktop")
    # The tray may keep the app alive without a window; quitting is always explicit.
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app, icon=False, style=False)

    # First frame: the chat screen's panels (ui/skeleton.py); the widgets replace them right after.
    probe = bool(os.environ.get("NEXUS_STARTUP_PROBE"))
    window = MainWindow(build=False, reserved_pages=APP_PAGES)
    window.show()
    app.processEvents()
    if probe:
        print("NEXUS_SHOWN", time.time(), flush=True)
    window.build_ui()
    # The message box takes typing now; a Send before the chat has opened is sent when it opens.
    window.chat_view.wait_for_chat()
    # Paint the built window before asyncio and qasync load (they cost more than the window).
    app.processEvents()
    if probe:
        # benchmarks/startup.py: the built window has been painted too; report and leave.
        print("NEXUS_BUILT", time.time(), flush=True)
        os._exit(0)
    # Loading asyncio, qasync and the app's lifecycle takes ~30 ms before the event loop runs; keys
    # typed meanwhile are taken and painted between the steps rather than after all of them.
    import asyncio

    app.processEvents()
    import qasync

    from nexus_desktop.ui.lifecycle import Application, install_quit_signals

    app.processEvents()
    # The window manager's icon can come a few milliseconds after the first frames (7 sizes drawn).
    app.setWindowIcon(app_icon())

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    application = Application(app, window)
    notifier = install_quit_signals(app, application.quit)
    # Collection comes back on the Qt thread only (ui/gc_pause.py: Qt objects freed by a worker
    # thread's collection can deadlock against the Qt thread).
    from nexus_desktop.ui.gc_pause import collect_garbage_on_qt_thread

    collect_garbage_on_qt_thread()
    with loop:
        if smoke:
            from nexus_desktop.ui.smoke_test import smoke_test

            smoke_check = loop.create_task(smoke_test(application))  # held: asyncio keeps tasks weakly
        else:
            loop.call_soon(application.start_soon)
        loop.run_until_complete(application.finished.wait())
    if smoke:
        del smoke_check
    del notifier
    return application.exit_code


if __name__ == "__main__":
    sys.exit(main())
