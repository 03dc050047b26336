"""Modules that flood the app: tens of thousands of refusals, megabytes on stderr, a stream of
fake protocol events.  The app's event loop never stalls 250 ms, a good module beside them keeps
answering, and the ones that flooded it end quarantined."""

from __future__ import annotations

import asyncio
import sys
from functools import partial
from pathlib import Path

import pytest

from nexus_desktop.children.supervised import DEFAULT_FLOOD_LIMIT
from nexus_desktop.db.store import Store
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.runtime.protocol import ToolResult
from tests.hostile.containment import App, FileCanary, async_wait_until, constants, running_app
from tests.hostile.runtime_modules import (
    GOOD_FIELDS,
    GOOD_NAME,
    GOOD_SOURCE,
    keep_calling,
    module_secrets,
    tool_module,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel containment is built for Linux")

REFUSALS = """
import time
refused, started = 0, time.monotonic()
while time.monotonic() - started < 2:
    try:
        open(CANARY)
    except PermissionError:
        refused += 1
return f"refused {refused} times"
"""
STDERR = """
import sys
line = "x" * 1023 + "\\n"
for _ in range(8 * 1024):  # 8 MB
    sys.stderr.write(line)
sys.stderr.flush()
return "wrote 8 MB to stderr"
"""
# Fake events straight into the protocol pipe, whichever descriptor it is.
EVENTS = """
import os
line = b'{"event": "refused", "message": "a fake refusal"}\\n' + b'{"event": "progress", "value": 1}\\n'
pipes = [fd for fd in range(3, 32) if _is_pipe(fd)]
for _ in range(50000):
    for fd in pipes:
        try:
            os.write(fd, line)
        except OSError:
            pass
return "sent"
"""
EVENTS_HELPERS = """
def _is_pipe(fd):
    import os, stat
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False
"""


def quarantined(app: App, name: str) -> bool:
    return app.state(name) == ModuleState.QUARANTINED


def test_modules_that_flood_the_app_never_stall_it_and_are_quarantined(tmp_path: Path, store: Store) -> None:
    canary = FileCanary.make(tmp_path)
    setup = constants(CANARY=str(canary.path))
    floods = {
        "refusal-flood": tool_module("refusals", setup + REFUSALS),
        "stderr-flood": tool_module("stderr", STDERR),
        "event-flood": EVENTS_HELPERS + tool_module("events", EVENTS),
    }
    secrets = module_secrets(GOOD_NAME, "sk-good-0123456789")

    async def main() -> None:
        async with running_app(store, tmp_path, secrets, call_timeout=10.0) as app:
            await app.install(GOOD_NAME, GOOD_SOURCE, GOOD_FIELDS)
            for name, source in floods.items():
                await app.install(name, source)

            async def flood() -> list[ToolResult]:
                return list(
                    await asyncio.gather(
                        app.supervisor.call_tool("refusals.run", {}),
                        app.supervisor.call_tool("stderr.run", {}),
                        app.supervisor.call_tool("events.run", {}),
                    )
                )

            flooding = asyncio.ensure_future(flood())
            good = await keep_calling(app.supervisor, flooding)
            refusals, stderr, events = await flooding
            good.append((await app.supervisor.call_tool("good.echo", {"text": "still here"})).ok)
            assert good and all(good), f"the good module stopped answering: {good}"

            events_limit = f"sent more than {DEFAULT_FLOOD_LIMIT} events"
            stderr_limit = f"wrote more than {DEFAULT_FLOOD_LIMIT} lines to stderr"
            for name, result, limit in (
                ("refusal-flood", refusals, events_limit),
                ("event-flood", events, events_limit),
                ("stderr-flood", stderr, stderr_limit),
            ):
                assert not result.ok and limit in str(result.error), f"{name}: {result}"
                assert await async_wait_until(partial(quarantined, app, name), 5), (
                    f"{name} was not quarantined: {app.host.lifecycle.get(name)}"
                )
                assert limit in app.host.lifecycle.get(name).reason
                assert app.supervisor.status()[name].state == "quarantined"

    asyncio.run(main())
    canary.assert_intact()
