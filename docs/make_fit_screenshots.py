"""Save screenshots of Settings → Model's GPU area with the VRAM bar, on a throw-away data folder.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/make_fit_screenshots.py [--out DIR]

Writes DIR/vram_bar.png (default DIR: docs/screenshots/): the bundled model on a "what if" 8 GB
card (as ``nexus models fit --vram-mb 8192``), with q8_0 KV cache at 8,192 tokens, so the bar is
not all zeros on a machine without a GPU; and DIR/vram_bar_cpu_only.png: what a CPU-only
llama.cpp build shows instead of a bar (how to get a GPU build).  Both at 800x500.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent


async def shoot(core, out: Path) -> None:  # type: ignore[no-untyped-def]
    from nexus_desktop.llm.vram_fit import GIB
    from nexus_desktop.ui.gpu_section import GpuHardware
    from nexus_desktop.ui.ops import wait_for_running_ops
    from nexus_desktop.ui.settings_dialog import SettingsDialog

    for name, hardware in (("vram_bar.png", GpuHardware.what_if(8 * GIB)), ("vram_bar_cpu_only.png", None)):
        dialog = SettingsDialog(core, page="model")
        dialog.resize(800, 500)
        dialog.show()
        gpu = dialog.gpu
        while gpu.info is None or gpu.hardware is None:  # the header and the build, read off the Qt thread
            await asyncio.sleep(0.05)
        await wait_for_running_ops()
        if hardware is not None:
            gpu.set_hardware(hardware)
        else:
            gpu.set_hardware(GpuHardware(False, None, None))  # as this machine's CPU-only build says
        gpu.kv_type.setCurrentIndex(gpu.kv_type.findData("q8_0"))
        area = dialog.tabs.currentWidget()
        area.ensureWidgetVisible(gpu.bar)  # scroll the model page down to the bar
        await asyncio.sleep(0.2)
        dialog.grab().save(str(out / name))
        print(f"{out / name}: {gpu.bar.sentence.text()}")
        dialog.reject()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NEXUS_DATA_DIR"] = tempfile.mkdtemp(prefix="nexus-fit-shots-")
    sys.path.insert(0, str(DOCS.parent))
    import qasync
    from PySide6.QtWidgets import QApplication

    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.theme import apply_theme

    app = QApplication(sys.argv[:1])
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    core = AppCore()
    core.settings = core.settings.model_copy(update={"context_size": 8192})
    with loop:
        loop.run_until_complete(shoot(core, args.out))
        loop.run_until_complete(core.aclose())
    return 0


if __name__ == "__main__":
    sys.exit(main())
