"""Enabled modules run in their own processes: their tools, filters and secrets work through the
supervisor, and only the files the user approved are ever launched."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.registry import ModuleHost
from nexus_desktop.modules.runtime.breaker import TokenBucket
from nexus_desktop.modules.runtime.supervisor import ModuleRuntimeError, ModuleSupervisor
from nexus_desktop.modules.runtime.validate import validate_and_record, validate_module
from nexus_desktop.modules.specs import MessageContext
from nexus_desktop.secrets import SecretStore
from tests.hostile.modules import write_module
from tests.hostile.runtime_modules import (
    GOOD_FIELDS,
    GOOD_NAME,
    GOOD_SOURCE,
    approve_all,
    developer_host,
    make_supervisor,
    module_secrets,
)

T = TypeVar("T")
SECRET = "sk-runtime-test-0123456789"


@pytest.fixture
def secrets() -> SecretStore:
    return module_secrets(GOOD_NAME, SECRET)


@pytest.fixture
def host(tmp_path: Path, store: Store) -> ModuleHost:
    host = developer_host(store, tmp_path, {GOOD_NAME: (GOOD_SOURCE, GOOD_FIELDS)})
    approve_all(host)
    return host


def with_supervisor(
    host: ModuleHost, secrets: SecretStore, body: Callable[[ModuleSupervisor], Awaitable[T]], **options: Any
) -> T:
    async def main() -> T:
        supervisor = make_supervisor(host, secrets, **options)
        try:
            return await body(supervisor)
        finally:
            await supervisor.aclose()

    return asyncio.run(main())


def test_an_enabled_module_runs_in_its_own_process_and_its_tools_answer(
    host: ModuleHost, secrets: SecretStore
) -> None:
    async def body(supervisor: ModuleSupervisor) -> None:
        await supervisor.start()
        assert {tool.name for tool in supervisor.tools()} == {"good.echo", "good.secret_length"}
        echo = next(tool for tool in supervisor.tools() if tool.name == "good.echo")
        assert (echo.module, echo.parameters["type"]) == (GOOD_NAME, "object")
        result = await supervisor.call_tool("good.echo", {"text": "hello"})
        assert (result.ok, result.content, result.error) == (True, "hello", None)
        status = supervisor.status()[GOOD_NAME]
        assert status.state == "running" and status.calls == 1 and status.failures == 0
        assert status.pid is not None and status.pid != os.getpid()

    with_supervisor(host, secrets, body)


def test_an_unknown_tool_is_a_failed_result_not_an_exception(host: ModuleHost, secrets: SecretStore) -> None:
    async def body(supervisor: ModuleSupervisor) -> None:
        await supervisor.start()
        result = await supervisor.call_tool("nobody.here", {})
        assert not result.ok and result.error is not None and "No tool named nobody.here" in result.error

    with_supervisor(host, secrets, body)


def test_message_filters_chain_and_a_command_is_answered_by_the_module(
    host: ModuleHost, secrets: SecretStore
) -> None:
    async def body(supervisor: ModuleSupervisor) -> None:
        await supervisor.start()
        context = MessageContext(chat_id=1, character_name="Aria", extra={"mood": "calm"})
        assert await supervisor.filter_message("hi", context) == "hi (checked)"
        assert await supervisor.answer_message("/ping", context) == "pong"
        assert await supervisor.answer_message("hello", context) is None

    with_supervisor(host, secrets, body)


def test_a_module_receives_the_credential_its_manifest_declares(
    host: ModuleHost, secrets: SecretStore
) -> None:
    async def body(supervisor: ModuleSupervisor) -> None:
        await supervisor.start()
        result = await supervisor.call_tool("good.secret_length", {})
        assert result.content == str(len(SECRET))

    with_supervisor(host, secrets, body)


def test_files_changed_after_approval_are_refused_before_launch(
    host: ModuleHost, secrets: SecretStore, tmp_path: Path
) -> None:
    main = tmp_path / "dev" / GOOD_NAME / "good_helper" / "main.py"
    main.write_text(main.read_text() + "\nimport os  # tampered after approval\n")

    async def body(supervisor: ModuleSupervisor) -> None:
        with pytest.raises(ModuleRuntimeError, match="changed since you approved them"):
            await supervisor.start_module(GOOD_NAME)
        assert supervisor.tools() == []

    with_supervisor(host, secrets, body)
    record = host.lifecycle.get(GOOD_NAME)
    assert record.state == ModuleState.AWAITING_APPROVAL
    assert record.reason == "its files changed since you approved them"


def test_a_module_waiting_for_approval_is_not_started(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    host = developer_host(store, tmp_path, {GOOD_NAME: (GOOD_SOURCE, GOOD_FIELDS)})

    async def body(supervisor: ModuleSupervisor) -> None:
        await supervisor.start()
        assert supervisor.tools() == []
        with pytest.raises(ModuleRuntimeError, match="awaiting_approval, so it was not started"):
            await supervisor.start_module(GOOD_NAME)

    with_supervisor(host, secrets, body)


def test_calls_over_the_rate_limit_fail_fast_with_a_reason(host: ModuleHost, secrets: SecretStore) -> None:
    async def body(supervisor: ModuleSupervisor) -> None:
        await supervisor.start()
        results = [await supervisor.call_tool("good.echo", {"text": "x"}) for _ in range(3)]
        assert [result.ok for result in results] == [True, True, False]
        assert results[2].error is not None and "more than 2 times a minute" in results[2].error
        assert supervisor.status()[GOOD_NAME].failures == 0  # being busy is not the module's fault

    with_supervisor(host, secrets, body, rate_per_minute=2)
    assert host.lifecycle.get(GOOD_NAME).failure_count == 0


def test_stopping_removes_the_tools_and_reloading_starts_a_fresh_process(
    host: ModuleHost, secrets: SecretStore
) -> None:
    async def body(supervisor: ModuleSupervisor) -> None:
        await supervisor.start()
        first = supervisor.status()[GOOD_NAME].pid
        await supervisor.stop_module(GOOD_NAME)
        assert supervisor.tools() == []
        assert supervisor.status()[GOOD_NAME].state == "stopped"
        assert await supervisor.filter_message("hi", MessageContext()) == "hi"  # not started again
        assert supervisor.status()[GOOD_NAME].pid is None
        await supervisor.reload_module(GOOD_NAME)
        status = supervisor.status()[GOOD_NAME]
        assert status.state == "running" and status.pid not in (None, first)
        assert (await supervisor.call_tool("good.echo", {"text": "again"})).content == "again"

    with_supervisor(host, secrets, body)


def test_the_rate_limit_refills_over_time() -> None:
    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0])
    assert all(bucket.take() for _ in range(60))
    assert not bucket.take()
    now[0] += 1.0  # one call a second
    assert bucket.take()
    assert not bucket.take()


# Validation ------------------------------------------------------------------------------------

MODULE_TEST = """
from good_helper.main import echo


def test_echo_says_it_back():
    assert echo("hi") == "hi"
"""


def test_a_well_behaved_module_passes_validation_and_its_tests_run_in_the_sandbox(
    host: ModuleHost, tmp_path: Path
) -> None:
    folder = tmp_path / "dev" / GOOD_NAME
    (folder / "tests").mkdir()
    (folder / "tests" / "test_echo.py").write_text(MODULE_TEST)
    manifest = folder / "nexus-module.json"
    manifest.write_text(manifest.read_text().replace('"hooks"', '"test_file": "tests/test_echo.py", "hooks"'))
    host.refresh()

    report = asyncio.run(validate_and_record(host, GOOD_NAME, timeout=60))
    assert report["ok"], report
    assert [check["name"] for check in report["checks"]] == [
        "compile",
        "permissions",
        "file access",
        "native files",
        "hooks",
        "tests",
    ]
    tests = report["checks"][-1]
    assert tests["message"].startswith("Its tests passed: 1 passed")
    assert all(check["seconds"] >= 0 for check in report["checks"])
    record = host.lifecycle.get(GOOD_NAME)
    assert record.last_report == report and record.failure_count == 0


UNDECLARED = """
import os
import socket
from subprocess import run

from nexus_desktop.modules.hookspecs import hookimpl


def leak():
    os.system("curl example.org")
    return open("/etc/passwd").read()


class Plugin:
    @hookimpl
    def register_tools(self, register, extra):
        pass


plugin = Plugin()
"""


def test_validation_reports_undeclared_access_native_files_and_bad_hook_signatures(tmp_path: Path) -> None:
    folder = tmp_path / "sneaky"
    write_module(folder, "sneaky", code=UNDECLARED)
    (folder / "sneaky" / "_speedups.so").write_bytes(b"\x7fELF")

    report = validate_module(folder, timeout=60)
    checks = {check["name"]: check for check in report["checks"]}
    assert not report["ok"]
    assert report["error"] == checks["permissions"]["message"]
    assert checks["compile"]["ok"]
    assert checks["permissions"]["problems"] == [
        "sneaky/main.py line 3 imports socket, but its manifest does not allow network access "
        "(permissions.network)",
        "sneaky/main.py line 4 imports subprocess, but its manifest does not allow starting programs "
        "(permissions.subprocess)",
        "sneaky/main.py line 10 calls os.system, but its manifest does not allow starting programs "
        "(permissions.subprocess)",
    ]
    assert "opens /etc/passwd, outside its folder" in checks["file access"]["message"]
    assert "sneaky/_speedups.so is native code" in checks["native files"]["message"]
    assert "register_tools" in checks["hooks"]["message"] and "extra" in checks["hooks"]["message"]


def test_a_module_whose_tests_fail_or_hang_fails_validation_with_the_reason(tmp_path: Path) -> None:
    folder = tmp_path / "flaky"
    write_module(folder, "flaky", test_file="test_flaky.py")
    (folder / "test_flaky.py").write_text(
        "import time\n\ndef test_fails():\n    assert 1 == 2\n\n"
        "def test_hangs():\n    while True:\n        pass\n"
    )
    report = validate_module(folder, timeout=5)
    tests = report["checks"][-1]
    assert not report["ok"] and not tests["ok"]
    assert tests["message"].startswith("Its tests could not run: ")
    assert "5 seconds" in tests["message"] or "CPU time" in tests["message"]


def test_a_module_that_misbehaves_on_import_is_caught_by_validation_not_run_unguarded(tmp_path: Path) -> None:
    folder = tmp_path / "peek"
    secret = tmp_path / "secret.txt"
    secret.write_text("nope")
    write_module(folder, "peek", code=f"open({str(secret)!r}).read()\n" + GOOD_SOURCE.split('"""', 2)[2])
    report = validate_module(folder, timeout=60)
    hooks = next(check for check in report["checks"] if check["name"] == "hooks")
    assert not hooks["ok"]
    assert f"may not read {secret}" in hooks["message"]


LEAKY = """
import sys
from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec

key = {}


def leak():
    print("my key is", key["api_key"], file=sys.stderr, flush=True)
    raise ValueError("the key " + key["api_key"] + " was rejected")


class Plugin:
    @hookimpl
    def startup(self, app_info):
        key.update(app_info["credentials"])

    @hookimpl
    def register_tools(self, register):
        register(ToolSpec("leaky.leak", "Leak.", {"type": "object", "properties": {}}, leak))


plugin = Plugin()
"""


def test_a_credential_a_module_echoes_is_masked_in_logs_and_reports(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    leaked = f"sk-leaky-{uuid.uuid4().hex}"
    secrets = module_secrets("leaky", leaked)
    fields = {
        "hooks": ["startup", "register_tools"],
        "credentials": [{"name": "api_key", "instructions": "Paste it."}],
    }
    host = developer_host(store, tmp_path, {"leaky": (LEAKY, fields)})
    approve_all(host)

    async def body(supervisor: ModuleSupervisor) -> str | None:
        await supervisor.start()
        result = await supervisor.call_tool("leaky.leak", {})
        await asyncio.sleep(0.2)  # let the stderr reader log the printed line
        return result.error

    caplog.set_level("DEBUG", logger="nexus_desktop")
    error = with_supervisor(host, secrets, body)
    assert error is not None and "the key *** was rejected" in error
    assert leaked not in caplog.text and "my key is ***" in caplog.text
    assert leaked not in str(host.lifecycle.get("leaky").last_report)


EXTRAS = """
from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import DashboardPanelSpec, ScheduledTaskSpec

CARD = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Remote Rita", "description": "x"}}


class Plugin:
    @hookimpl
    def register_characters(self, register):
        register(CARD, avatar=b"PNG-bytes")

    @hookimpl
    def register_scheduled_tasks(self, register):
        register(ScheduledTaskSpec("extras.tidy", "Tidy up.", 3600, lambda: "tidied"))

    @hookimpl
    def register_dashboard_panels(self, register):
        register(DashboardPanelSpec("extras.stats", "Stats", lambda: {"calls": 3}))


plugin = Plugin()
"""


def test_characters_tasks_and_panels_registered_in_the_module_process_reach_the_app(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    fields = {"hooks": ["register_characters", "register_scheduled_tasks", "register_dashboard_panels"]}
    host = developer_host(store, tmp_path, {"extras": (EXTRAS, fields)})
    approve_all(host)

    async def body(supervisor: ModuleSupervisor) -> None:
        await supervisor.start()
        (character,) = supervisor.characters()
        assert character.card["data"]["name"] == "Remote Rita" and character.avatar == b"PNG-bytes"
        (task,) = supervisor.scheduled_tasks()
        assert (task.name, task.interval_seconds, task.module) == ("extras.tidy", 3600, "extras")
        assert (await supervisor.run_task("extras", "extras.tidy")).content == "tidied"
        (panel,) = supervisor.panels()
        assert (panel.name, panel.title) == ("extras.stats", "Stats")
        assert json.loads((await supervisor.render_panel("extras", "extras.stats")).content) == {"calls": 3}

    with_supervisor(host, secrets, body)


LOOPBACK_TEST = """
import socket
import threading


def test_a_local_server_of_its_own_is_reachable():
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: server.accept()[0].sendall(b"hi"), daemon=True).start()
    client = socket.create_connection(server.getsockname(), timeout=5)
    assert client.recv(2) == b"hi"


def test_someone_elses_local_server_is_not():
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=5)
    except PermissionError as error:
        assert "may not use the network" in str(error)
    else:
        raise AssertionError("connected")
"""


def test_module_tests_may_use_their_own_loopback_servers_but_no_one_elses(tmp_path: Path) -> None:
    outsider = socket.create_server(("127.0.0.1", 0))
    try:
        folder = write_module(tmp_path / "local", "local", test_file="test_local.py")
        port = outsider.getsockname()[1]
        (folder / "test_local.py").write_text(LOOPBACK_TEST.replace("{port}", str(port)))
        report = validate_module(folder, timeout=60)
        outsider.settimeout(0.01)
        with pytest.raises(TimeoutError):
            outsider.accept()
    finally:
        outsider.close()
    assert report["ok"], [check["message"] for check in report["checks"]]
    assert report["checks"][-1]["message"].startswith("Its tests passed: 2 passed")
