"""Screenshots of the Modules page (one module awaiting approval) and of its approval dialog.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_module_screenshots.py

Real parts on a throw-away data folder: the bundled modules, plus the guide's example module
installed from a folder and validated, then the page and the dialog are grabbed (1280x800).
Writes docs/screenshot-modules.png and docs/screenshot-approval.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
EXAMPLE = DOCS / "examples" / "quote-of-the-day"
# The shot shows a module that asks for something, so the dialog has a list to show.
EXTRA_MANIFEST = """
[permissions]
network = ["quotes.example.org"]

[[credentials]]
name = "api_key"
instructions = "Optional: a key from quotes.example.org lifts the daily limit."
required = false
"""


async def run(root: Path) -> None:
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.db.store import Store
    from nexus_desktop.modules.service import ModuleService
    from nexus_desktop.secrets import SecretStore
    from nexus_desktop.ui.approval_dialog import ApprovalDialog
    from nexus_desktop.ui.modules_page import ModulesPage
    from nexus_desktop.ui.ops import wait_for_running_ops

    source = root / "src" / "quote-of-the-day"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    manifest = source / "nexus-module.toml"
    manifest.write_text(manifest.read_text() + EXTRA_MANIFEST)
    store = Store(root / "nexus.db")
    service = ModuleService(
        store.engine, SecretStore("nexus-screenshots"), user_dir=root / "user", environ={}
    )
    await service.start()
    await service.install(source)
    await service.validate("quote-of-the-day")

    page = ModulesPage()
    page.resize(1280, 800)
    page.show()
    page.bind(service)
    await wait_for_running_ops()
    for _ in range(20):
        QApplication.processEvents()
        await asyncio.sleep(0.05)
    page.grab().save(str(DOCS / "screenshot-modules.png"))

    request = await service.review("quote-of-the-day")
    dialog = ApprovalDialog(request, await service.report("quote-of-the-day"))
    dialog.resize(680, dialog.sizeHint().height())
    dialog.show()
    for _ in range(10):
        QApplication.processEvents()
        await asyncio.sleep(0.05)
    dialog.grab().save(str(DOCS / "screenshot-approval.png"))
    dialog.close()
    page.close()
    await service.aclose()
    store.close()


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    root = Path(tempfile.mkdtemp(prefix="nexus-module-shots-"))
    os.environ["NEXUS_DATA_DIR"] = str(root / "data")
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.ui.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    app.setQuitOnLastWindowClosed(False)  # closing the page must not stop the loop
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(run(root))
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
