"""``nexus-desktop --smoke-test``: start the app as a user would, load the configured model (the
bundled SmolLM2 on a fresh install), print one line and quit: exit 0 when the model answered a
load, 1 with the reason otherwise.  The bundle's CI check (installers/bundle/smoke.sh) runs it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_desktop.ui.lifecycle import Application

_LOAD_TIMEOUT_S = 300.0


async def smoke_test(application: Application) -> None:
    try:
        await application.start()
        if application.core is None:
            raise RuntimeError("start-up failed (see the log)")
        source = await asyncio.wait_for(application.window.ensure_model(), _LOAD_TIMEOUT_S)
        print(f"NEXUS smoke test passed: the window is up and {source.name} is loaded.", flush=True)
    except Exception as error:
        print(f"NEXUS smoke test failed: {type(error).__name__}: {error}", flush=True)
        application.exit_code = 1
    application.quit()
