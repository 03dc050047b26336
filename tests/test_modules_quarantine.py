"""A quarantined module comes back through release, validation and a fresh approval, keeping its
data and secrets; and a card offers exactly the actions the lifecycle allows, in every state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlmodel import Session, select

from nexus_desktop.modules.errors import ModuleError
from nexus_desktop.modules.lifecycle import (
    ACTION_TARGETS,
    ALLOWED_TRANSITIONS,
    QUARANTINE_AFTER_FAILURES,
    USER_ACTIONS,
    ModuleState,
    UserAction,
)
from nexus_desktop.modules.runtime.supervisor import credential_key
from nexus_desktop.modules.runtime.validate import module_data_dir
from nexus_desktop.modules.service import ModuleService
from nexus_desktop.modules.tables import ModuleRecord
from nexus_desktop.secrets import SecretStore
from tests.conftest_keyring import read_secret_service_value
from tests.hostile.modules import write_module
from tests.test_modules_service import with_service as service_harness

T = TypeVar("T")
S = ModuleState
NAME = "weather-probe"
KEY = "owm-probe-key-0123456789"
# Like the weather module: it keeps something in its data folder, needs a key, and its forecast
# fails while the PC is offline (here: while a file named "offline" sits in its data folder).
SOURCE = """
from pathlib import Path

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec

TEXT = {"type": "object", "properties": {"text": {"type": "string"}}}
state = {}


def remember(text=""):
    (state["folder"] / "saved.txt").write_text(text)
    return "saved"


def forecast():
    if (state["folder"] / "offline").exists():
        raise ConnectionError("the PC is offline")
    saved = (state["folder"] / "saved.txt").read_text()
    return f"sunny; key of {len(state['key'] or '')} characters; saved: {saved}"


class Plugin:
    @hookimpl
    def startup(self, app_info):
        state["folder"] = Path(app_info["module_dir"])
        state["key"] = app_info["credentials"].get("api_key")

    @hookimpl
    def register_tools(self, register):
        register(ToolSpec("probe.remember", "Keep a note.", TEXT, remember))
        register(ToolSpec("probe.forecast", "Today's weather.", {"type": "object"}, forecast))


plugin = Plugin()
"""
FIELDS: dict[str, Any] = {
    "hooks": ["startup", "register_tools"],
    "credentials": [{"name": "api_key", "instructions": "Paste the test key."}],
}


def probe_source(folder: Path) -> Path:
    return write_module(folder / NAME, NAME, code=SOURCE, **FIELDS)


def with_service(
    tmp_path: Path,
    body: Callable[[ModuleService], Awaitable[T]],
    *,
    secrets: SecretStore | None = None,
    start_modules: bool = True,
) -> T:
    return service_harness(
        tmp_path,
        body,
        secrets=secrets,
        start_modules=start_modules,
        validation_timeout=120,
        supervisor_options={"call_timeout": 10.0},
    )


# The whole way back, through real module processes -----------------------------------------------


@pytest.mark.keyring
def test_a_module_quarantined_after_three_failures_is_released_validated_approved_and_keeps_its_data(
    tmp_path: Path, secret_service_keyring: Any, keyring_service_name: str
) -> None:
    source = probe_source(tmp_path / "src")
    offline = module_data_dir(NAME) / "offline"

    async def body(service: ModuleService) -> None:
        await service.install(source)
        assert (await service.validate(NAME))["ok"]
        await service.approve(await service.review(NAME))
        await service.set_credential(NAME, "api_key", KEY)  # the keyring; the module is reloaded
        assert (await service.call_tool("probe.remember", {"text": "my cat is Tom"})).ok

        offline.touch()  # the PC goes offline: three forecasts fail in a row
        failures = [await service.call_tool("probe.forecast") for _ in range(QUARANTINE_AFTER_FAILURES)]
        assert not any(result.ok for result in failures)
        assert "ConnectionError: the PC is offline" in str(failures[0].error)
        view = await service.get(NAME)
        assert view.state == S.QUARANTINED
        assert view.can("release") and not view.can("approve") and not view.can("enable")
        assert not (await service.call_tool("probe.forecast")).ok  # refused while quarantined

        offline.unlink()  # back online; the person releases it, it is validated and approved again
        assert (await service.release(NAME)).state == S.AWAITING_APPROVAL
        assert (await service.validate(NAME))["ok"]
        assert (await service.get(NAME)).state == S.AWAITING_APPROVAL
        request = await service.review(NAME)
        assert "ConnectionError: the PC is offline" in request.quarantined_because[0]
        assert "quarantined: failed 3 times in a row" in request.quarantined_because[-1]
        assert (await service.approve(request)).state == S.ENABLED

        result = await service.call_tool("probe.forecast")
        assert result.ok, result
        assert result.content == f"sunny; key of {len(KEY)} characters; saved: my cat is Tom"
        assert (await service.review(NAME)).quarantined_because == []  # approved since

    with_service(tmp_path, body, secrets=SecretStore(keyring_service_name, timeout=10))
    assert (module_data_dir(NAME) / "saved.txt").read_text() == "my cat is Tom"
    assert read_secret_service_value(keyring_service_name, credential_key(NAME, "api_key")) == KEY


# What a card offers, per state -------------------------------------------------------------------


def force_state(service: ModuleService, state: ModuleState) -> None:
    """Discovered and validated are passed through within one step; only a test stops there."""
    with Session(service.engine) as session:
        row = session.exec(select(ModuleRecord).where(ModuleRecord.name == NAME)).one()
        row.state = state.value
        session.add(row)
        session.commit()


async def put_in(service: ModuleService, case: str, source: Path) -> None:
    """Install the probe and bring it to ``case``: a state, or ``failed-validation``."""
    lifecycle = service.host.lifecycle
    await service.install(source)  # awaiting approval
    if case in (S.DISCOVERED, S.VALIDATED):
        force_state(service, S(case))
    elif case == "failed-validation":
        await service.record_validation(NAME, {"ok": False, "error": "its tests failed", "checks": []})
    elif case != S.AWAITING_APPROVAL:
        await service.approve(await service.review(NAME))
        if case == S.DISABLED:
            await service.disable(NAME)
        failures = {S.FAILED: 1, S.QUARANTINED: QUARANTINE_AFTER_FAILURES}.get(S(case), 0)
        for _ in range(failures):
            lifecycle.record_failure(NAME, {"error": "weather-probe failed: the PC is offline"})


async def do(service: ModuleService, action: UserAction) -> object:
    """What the Modules page calls for each card action (approve: the dialog's review, then approve)."""
    if action == UserAction.APPROVE:
        return await service.approve(await service.review(NAME))
    calls = {
        UserAction.VALIDATE: service.validate,
        UserAction.ENABLE: service.enable,
        UserAction.DISABLE: service.disable,
        UserAction.RELEASE: service.release,
    }
    return await calls[action](NAME)


CASES = [state.value for state in ModuleState] + ["failed-validation"]


@pytest.mark.parametrize("case", CASES)
def test_every_action_a_card_offers_succeeds_and_every_other_is_refused_with_its_reason(
    tmp_path: Path, case: str
) -> None:
    source = probe_source(tmp_path / "src")
    offered: dict[str, bool] = {}
    for action in UserAction:

        async def body(service: ModuleService, action: UserAction = action) -> None:
            await put_in(service, case, source)
            view = await service.get(NAME)
            offered[action] = view.can(action)
            if view.can(action):
                result = await do(service, action)
                target = ACTION_TARGETS[action]
                if target is None:  # validating is a check: its report passes
                    assert isinstance(result, dict) and result["ok"], result
                else:
                    assert (await service.get(NAME)).state == target, action
            else:
                reason = view.refusal(action)
                assert reason and NAME in reason, (action, reason)
                with pytest.raises(ModuleError) as refused:
                    await do(service, action)
                assert str(refused.value) == reason, action
                assert (await service.get(NAME)).state == view.state  # nothing happened

        with_service(tmp_path / f"{case}-{action}", body, start_modules=False)
    expected = {
        "discovered": {"validate"},
        "validated": {"validate", "approve"},
        "awaiting_approval": {"validate", "approve"},
        "enabled": {"validate", "disable"},
        "disabled": {"validate", "approve", "enable"},
        "failed": {"validate", "disable"},
        "quarantined": {"validate", "release"},
        "failed-validation": {"validate", "disable"},
    }[case]
    assert {action for action, yes in offered.items() if yes} == expected


def test_every_user_action_moves_along_a_transition_the_lifecycle_allows() -> None:
    for state, actions in USER_ACTIONS.items():
        for action in actions:
            target = ACTION_TARGETS[action]
            assert target in (None, state) or target in ALLOWED_TRANSITIONS[state], (state, action)
    assert USER_ACTIONS[S.QUARANTINED] == {UserAction.VALIDATE, UserAction.RELEASE}
    assert ALLOWED_TRANSITIONS[S.QUARANTINED] == {S.AWAITING_APPROVAL}  # no way round the review
