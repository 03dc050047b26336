"""Run a request's acceptance checks against a built module, as the user would use it.

The module is approved (validation passed in the build), its credentials are entered as the
user enters them, and each check calls its tool through ``ModuleService.call_tool``: the module
runs in its own contained process with the permissions it asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from benchmarks.module_requests import Request
from nexus_desktop.modules.service import ModuleService


@dataclass(frozen=True)
class Acceptance:
    passed: int
    total: int
    failures: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total


async def accept(service: ModuleService, request: Request) -> Acceptance:
    started = time.monotonic()
    failures: list[str] = []
    try:
        view = await service.get(request.name)
        if view.state == "awaiting_approval":
            await service.approve(await service.review(request.name))
        for key, value in request.credentials.items():
            await service.set_credential(request.name, key, value, session_only=True)
    except Exception as error:  # a module that cannot be approved passes no check
        return Acceptance(0, len(request.checks), (f"approve: {error}",), time.monotonic() - started)
    passed = 0
    for check in request.checks:
        result = await service.call_tool(f"{request.name}.{check.tool}", check.arguments)
        if result.ok and check.passes(result.content):
            passed += 1
        else:
            shown = result.content if result.ok else f"error: {result.error}"
            failures.append(f"{check.tool}({check.arguments}) -> {shown[:160]}")
    return Acceptance(passed, len(request.checks), tuple(failures), time.monotonic() - started)
