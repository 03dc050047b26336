"""What the kernel cannot enforce on a PC is said at approval, and a module runs only with the
weaker guarantee its approval accepted in so many words."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.runtime import containment
from nexus_desktop.modules.runtime.supervisor import ModuleRuntimeError
from nexus_desktop.sandbox.support import Support, detect
from tests.hostile.runtime_modules import developer_host, make_supervisor, module_secrets, tool_module

NAME = "net-module"
FULL = Support("linux", landlock_abi=7, seccomp=True, namespaces=True)
# An older Ubuntu: Landlock without network rules, user namespaces forbidden by AppArmor.
WEAK = Support("linux", landlock_abi=3, seccomp=True, namespaces=False)


def test_a_machine_with_every_layer_has_no_gaps_and_one_without_namespaces_says_what_it_lacks() -> None:
    assert FULL.gaps(network=True, subprocess=True) == []
    gaps = WEAK.gaps(network=True, subprocess=True)
    assert any(gap.startswith("Which hosts it may reach is not enforced") for gap in gaps)
    assert any(gap.startswith("It could send signals to your other programs") for gap in gaps)
    assert any(gap.startswith("If NEXUS itself is killed") for gap in gaps)
    assert WEAK.gaps(network=False, subprocess=False) == [
        "It could send signals to your other programs (needs Linux 6.12 or user namespaces)"
    ]
    assert (
        Support("win32", 0, False, False)
        .gaps(network=False, subprocess=False)[0]
        .startswith("This operating system's sandbox is not built yet")
    )


def answer(host: object, store: Store) -> str:
    async def main() -> str:
        supervisor = make_supervisor(host, module_secrets(NAME, "unused"))  # type: ignore[arg-type]
        try:
            await supervisor.start_module(NAME)
            return (await supervisor.call_tool(f"{NAME}.run", {})).content
        finally:
            await supervisor.aclose()

    return asyncio.run(main())


def test_a_gap_not_accepted_keeps_the_module_off_and_accepting_it_lets_it_run(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = {NAME: (tool_module(NAME, "return 'ran'"), {"permissions": {"network": ["localhost:9"]}})}
    host = developer_host(store, tmp_path, modules)
    if detect().namespaces and detect().landlock_abi >= 4:
        assert host.review(NAME).unenforced == []  # here everything is enforced: nothing to accept

    monkeypatch.setattr(containment, "detect", lambda: WEAK)
    request = host.review(NAME)
    assert request.unenforced and request.unenforced == WEAK.gaps(network=True, subprocess=False)

    host.approve(request)  # approved, but the weaker guarantee was not accepted
    with pytest.raises(ModuleRuntimeError, match="the system cannot enforce this part"):
        answer(host, store)

    host.approve(request.accepting_weaker_guarantee())
    assert answer(host, store) == "ran"
