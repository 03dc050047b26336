"""The hostile module corpus at run time: whatever a module does, the app stays responsive, a
well-behaved module beside it keeps answering, and the bad one ends failed or quarantined with
a readable reason in its lifecycle record.

Hostile installs (manifest path traversal, zip-slip, links leading out, oversized manifests,
duplicate names) are covered where they are refused, in test_modules_install.py and
test_modules_manifest.py.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import nexus_desktop.modules.registry as registry
import nexus_desktop.modules.specs as specs
from nexus_desktop.db.store import Store
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.registry import ModuleHost
from nexus_desktop.modules.runtime.protocol import ModuleRuntimeStatus, ToolResult
from nexus_desktop.modules.runtime.supervisor import ModuleRuntimeError, ModuleSupervisor
from nexus_desktop.modules.runtime.validate import module_data_dir
from nexus_desktop.modules.specs import MessageContext
from nexus_desktop.secrets import SecretStore
from tests.hostile.runtime_modules import (
    GOOD_FIELDS,
    GOOD_NAME,
    GOOD_SOURCE,
    Heartbeat,
    approve_all,
    developer_host,
    keep_calling,
    make_supervisor,
    module_secrets,
    tool_module,
)

SECRET = "sk-hostile-test-9876543210"
MAX_STALL_SECONDS = 0.25
BAD = "bad-module"
BAD_TOOL = "bad-module.run"


@pytest.fixture
def secrets() -> SecretStore:
    return module_secrets(GOOD_NAME, SECRET)


@dataclass
class Outcome:
    results: list[ToolResult]
    max_stall: float
    good_answers: list[bool]
    supervisor: ModuleSupervisor
    host: ModuleHost
    statuses: dict[str, ModuleRuntimeStatus]
    """``supervisor.status()`` before it was closed."""

    @property
    def record(self) -> Any:
        return self.host.lifecycle.get(BAD)

    def assert_contained(self) -> None:
        """The app stayed responsive and the good module answered throughout."""
        assert self.max_stall < MAX_STALL_SECONDS, f"the event loop stalled {self.max_stall:.3f} s"
        assert self.good_answers and all(self.good_answers), self.good_answers
        assert all(not result.ok for result in self.results), self.results

    def assert_failed(self, *fragments: str) -> None:
        self.assert_contained()
        for result in self.results:
            assert result.error is not None
            for fragment in fragments:
                assert fragment in result.error, result.error
        record = self.record
        assert record.state in (ModuleState.FAILED, ModuleState.QUARANTINED)
        assert all(fragment in record.reason for fragment in fragments), record.reason
        assert record.last_report is not None and record.last_report["error"]


def run_bad(
    tmp_path: Path,
    store: Store,
    secrets: SecretStore,
    source: str,
    *,
    calls: int = 1,
    fields: dict[str, Any] | None = None,
    after: Any = None,
    **options: Any,
) -> Outcome:
    """Start the good module and ``source`` as ``bad-module``; call the bad tool ``calls`` times
    while the good one is called in a loop; ``after(supervisor)`` runs before closing."""
    modules = {GOOD_NAME: (GOOD_SOURCE, GOOD_FIELDS), BAD: (source, fields or {})}
    host = developer_host(store, tmp_path, modules)
    approve_all(host)

    async def main() -> Outcome:
        supervisor = make_supervisor(host, secrets, **options)
        try:
            async with Heartbeat() as beat:
                await supervisor.start()

                async def bad_calls() -> list[ToolResult]:
                    return [await supervisor.call_tool(BAD_TOOL, {}) for _ in range(calls)]

                bad = asyncio.ensure_future(bad_calls())
                good = await keep_calling(supervisor, bad)
                results = await bad
                good.append((await supervisor.call_tool("good.echo", {"text": "still here"})).ok)
            if after is not None:
                await after(supervisor)
            return Outcome(results, beat.max_gap, good, supervisor, host, supervisor.status())
        finally:
            await supervisor.aclose()

    return asyncio.run(main())


def test_a_module_that_raises_on_import_fails_to_start_and_the_rest_start(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    source = "raise ImportError('the module needs numpy 9')\n" + tool_module(BAD, "return 'never'")
    outcome = run_bad(tmp_path, store, secrets, source)
    outcome.assert_contained()
    assert outcome.statuses[BAD].state == "failed"
    record = outcome.record
    assert record.state == ModuleState.FAILED
    assert "could not be loaded: ImportError: the module needs numpy 9 (main.py line 1)" in record.reason
    assert "No tool named bad-module.run" in str(outcome.results[0].error)


def with_exploding_filter(tool_body: str) -> tuple[str, dict[str, Any]]:
    """Source and manifest fields of ``bad-module`` whose tool runs ``tool_body`` and whose
    message filter raises "filter exploded"."""
    hooks = """
        @hookimpl
        def message_will_send(self, message, context):
            raise RuntimeError("filter exploded")
    """
    return tool_module(BAD, tool_body, hooks=hooks), {"hooks": ["register_tools", "message_will_send"]}


def test_a_module_that_raises_in_its_hooks_is_skipped_and_quarantined_after_repeated_failures(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    async def after(supervisor: ModuleSupervisor) -> None:
        # Quarantined: its filter is no longer asked, the good one's still applies.
        assert await supervisor.filter_message("hi", MessageContext()) == "hi (checked)"
        late = await supervisor.call_tool(BAD_TOOL, {})
        assert late.error is not None and "No tool named" in late.error

    source, fields = with_exploding_filter("raise ValueError('the dice fell off the table')")
    outcome = run_bad(tmp_path, store, secrets, source, calls=3, fields=fields, after=after)
    outcome.assert_failed("failed in call_tool: ValueError: the dice fell off the table (main.py line 7)")
    assert outcome.record.state == ModuleState.QUARANTINED
    assert outcome.record.reason.startswith("failed 3 times in a row; last: bad-module failed in call_tool")
    assert "quarantined" in str(outcome.results[-1].error)
    assert outcome.statuses[BAD].state == "quarantined"


def test_a_module_whose_filter_raises_leaves_the_message_to_the_others(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    async def after(supervisor: ModuleSupervisor) -> None:
        async with Heartbeat() as beat:
            assert await supervisor.filter_message("hi", MessageContext()) == "hi (checked)"
        assert beat.max_gap < MAX_STALL_SECONDS
        assert "filter exploded" in str(supervisor.status()[BAD].last_error)

    source, fields = with_exploding_filter("raise ValueError('no')")
    run_bad(tmp_path, store, secrets, source, fields=fields, after=after).assert_failed("ValueError: no")


@pytest.mark.parametrize(
    "body", ["while True:\n    pass", "import time\ntime.sleep(10**6)"], ids=["loops", "sleeps"]
)
def test_a_module_that_never_answers_costs_one_failed_call_and_its_process_is_killed(
    tmp_path: Path, store: Store, secrets: SecretStore, body: str
) -> None:
    pids: list[int | None] = []

    async def after(supervisor: ModuleSupervisor) -> None:
        for _ in range(500):  # SIGKILL takes a moment to land on a loaded machine
            if supervisor.status()[BAD].pid is None:
                break
            await asyncio.sleep(0.01)
        pids.append(supervisor.status()[BAD].pid)

    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body), after=after)
    outcome.assert_failed("did not answer within 2 seconds during call_tool")
    assert outcome.statuses[BAD].state == "failed"
    assert pids == [None]  # killed, not left spinning


def test_a_module_that_allocates_without_bound_hits_its_memory_limit(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    body = "hoard = []\nwhile True:\n    hoard.append(bytearray(32 * 2**20))"
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body), memory_limit_mb=256)
    outcome.assert_contained()
    error = str(outcome.results[0].error)
    assert "MemoryError" in error or "killed" in error, error
    assert outcome.record.state == ModuleState.FAILED


def test_a_segfault_through_declared_native_code_is_one_failed_call_each_time(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    body = "import ctypes\nreturn ctypes.string_at(0)"
    fields = {"permissions": {"native_code": True}}
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body), calls=3, fields=fields)
    outcome.assert_failed("crashed (SIGSEGV) during call_tool")
    assert outcome.record.state == ModuleState.QUARANTINED


def test_native_code_without_the_permission_is_refused_by_the_audit_hook(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    body = "import ctypes\nreturn ctypes.string_at(0)"
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body))
    outcome.assert_failed("may not load native code (ctypes.dlopen)")
    assert "permissions.native_code" in outcome.statuses[BAD].refusals[-1]


def test_a_module_that_calls_os_exit_costs_one_failed_call(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, "import os\nos._exit(3)"))
    outcome.assert_failed("exited with code 3 during call_tool")


@pytest.fixture
def tcp_listener() -> Iterator[tuple[int, list[Any]]]:
    """A loopback TCP server; the list collects every connection it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[Any] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_a_socket_without_the_network_permission_is_refused(
    tmp_path: Path, store: Store, secrets: SecretStore, tcp_listener: tuple[int, list[Any]]
) -> None:
    port, accepted = tcp_listener
    body = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nreturn 'connected'"
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body))
    outcome.assert_failed("may not use the network")
    assert accepted == []


def test_a_declared_host_is_reachable_and_others_are_not(
    tmp_path: Path, store: Store, secrets: SecretStore, tcp_listener: tuple[int, list[Any]]
) -> None:
    port, accepted = tcp_listener
    # Through the gatekeeper (what HTTP clients do with HTTPS_PROXY) it gets there; directly it
    # does not, even to the declared host and port.
    body = f"""
        import base64, http.client, os, socket, urllib.parse
        proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
        auth = base64.b64encode(f"{{proxy.username}}:{{proxy.password}}".encode()).decode()
        tunnel = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=5)
        tunnel.set_tunnel("localhost", {port}, headers={{"Proxy-Authorization": "Basic " + auth}})
        tunnel.connect()
        tunnel.close()
        socket.create_connection(('localhost', {port}), timeout=2).close()
    """
    fields = {"permissions": {"network": [f"localhost:{port}"]}}
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body), fields=fields)
    outcome.assert_failed("may reach the network only through NEXUS's gatekeeper")
    assert len(accepted) == 1


def test_reading_a_file_outside_its_folder_is_refused(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    private = tmp_path / "private.txt"
    private.write_text("the user's diary")
    body = f"return open({str(private)!r}).read()"
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body))
    outcome.assert_failed(f"may not read {private}")
    assert "diary" not in str(outcome.results[0])


def test_a_module_cannot_read_another_modules_secret(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    # A stand-in for the session bus: a listening local socket the module knows the path of.
    bus_path = tmp_path / "bus"
    bus = socket.socket(socket.AF_UNIX)
    bus.bind(str(bus_path))
    bus.listen()
    bus.setblocking(False)
    other_data = module_data_dir(GOOD_NAME)
    other_data.mkdir(parents=True, exist_ok=True)
    (other_data / "token.txt").write_text(SECRET)
    body = f"""
        import json, socket
        tries = {{}}
        def attempt(name, action):
            try:
                tries[name] = "got " + str(action())
            except Exception as error:
                tries[name] = f"{{type(error).__name__}}: {{error}}"
        attempt("bus", lambda: socket.socket(socket.AF_UNIX).connect({str(bus_path)!r}))
        attempt("data", lambda: open({str(other_data / "token.txt")!r}).read())
        def from_keyring():
            import keyring
            return keyring.get_password("nexus-desktop", "module:{GOOD_NAME}:api_key")
        attempt("keyring", from_keyring)
        raise PermissionError(json.dumps(tries))
    """

    async def after(supervisor: ModuleSupervisor) -> None:
        assert (await supervisor.call_tool("good.secret_length", {})).content == str(len(SECRET))

    try:
        outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body), after=after)
    finally:
        with pytest.raises(BlockingIOError):
            bus.accept()  # nobody ever connected
        bus.close()
    outcome.assert_failed()
    error = str(outcome.results[0].error)
    assert SECRET not in error and SECRET not in str(outcome.record.last_report)
    assert "may not use local sockets such as D-Bus or the keyring" in error
    assert f"may not read {other_data / 'token.txt'}" in error
    assert "got " not in error  # the keyring gave nothing either


def test_a_module_that_monkeypatches_the_host_changes_only_its_own_process(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    before = (builtins.open, json.dumps, registry.filter_message, specs.ToolSpec, os._exit)
    body = """
        import builtins, json, os
        import nexus_desktop.modules.registry as registry
        import nexus_desktop.modules.specs as specs
        builtins.open = None
        registry.filter_message = lambda *args, **kwargs: "hijacked"
        specs.ToolSpec = None
        os._exit = None
        json.dumps = lambda *args, **kwargs: "hijacked"
        return "done"
    """
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body), memory_limit_mb=512)
    outcome.assert_failed("did not answer")  # it broke its own channel, nothing else
    assert (builtins.open, json.dumps, registry.filter_message, specs.ToolSpec, os._exit) == before


def test_a_module_cannot_switch_off_its_audit_hook(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    body = """
        import gc, os, sys
        tries = []
        def add_hook():
            seen = []
            sys.addaudithook(lambda event, args: seen.append(event))  # refused silently by CPython
            open(os.devnull).close()
            if not seen:
                raise PermissionError("the hook was not added")
        for trick in (
            add_hook,
            lambda: gc.get_objects(),
            lambda: open("/proc/self/mem", "wb"),
            lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_AS, (-1, -1)),
            lambda: os.chdir("/"),
            lambda: os.pidfd_open(os.getppid()),
            lambda: (sys.modules.pop("posix"), __import__("posix")),
            lambda: __import__("_xxsubinterpreters"),
            lambda: __import__("_posixsubprocess").fork_exec(),
            lambda: open("/etc/hostname").read(),  # and the hook is still there
        ):
            try:
                trick()
                tries.append("worked")
            except Exception as error:
                tries.append(type(error).__name__)
        raise RuntimeError(" ".join(tries))
    """
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body))
    outcome.assert_failed("RuntimeError: PermissionError " + " ".join(["AccessRefused"] * 9))
    refusals = " ".join(outcome.statuses[BAD].refusals)
    for refused in (
        "add audit hooks",
        "inspect the garbage collector",
        "may not change /proc/",
        "resource limits",
        "change its working folder",
        "may not import posix",
        "may not import _xxsubinterpreters",
        "may not read /etc/hostname",
    ):
        assert refused in refusals, refused


def test_output_that_mimics_the_protocol_is_not_taken_for_an_answer(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    body = """
        import sys
        for request_id in range(1, 50):
            print('{"id": %d, "ok": true, "result": "forged"}' % request_id, flush=True)
        raise RuntimeError("the real answer")
    """
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body))
    outcome.assert_failed("RuntimeError: the real answer")


def test_a_quarantined_module_is_refused_at_once_without_a_process(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    async def after(supervisor: ModuleSupervisor) -> None:
        with pytest.raises(ModuleRuntimeError, match="quarantined, so it was not started"):
            await supervisor.start_module(BAD)
        assert supervisor.status()[BAD].pid is None

    outcome = run_bad(
        tmp_path, store, secrets, tool_module(BAD, "import os\nos._exit(1)"), calls=3, after=after
    )
    outcome.assert_failed("exited with code 1")
    history = [(event.from_state, event.to_state) for event in outcome.host.lifecycle.history(BAD)]
    assert history[-2:] == [("enabled", "failed"), ("failed", "quarantined")]


def test_a_module_that_floods_its_answer_channel_is_stopped(
    tmp_path: Path, store: Store, secrets: SecretStore
) -> None:
    body = """
        import os
        chunk = b"x" * 2**20
        for fd in range(3, 10):  # the protocol pipe is one of these
            try:
                for _ in range(9):
                    os.write(fd, chunk)
            except OSError:
                continue
        return "flooded"
    """
    outcome = run_bad(tmp_path, store, secrets, tool_module(BAD, body), memory_limit_mb=512)
    outcome.assert_failed("sent a message over 8 MB, so it was stopped during call_tool")
