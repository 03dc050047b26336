"""The main of a module's process: load one module under its audit hook and answer the host.

Started by the supervisor (``serve``) or by validation (``validate``, ``test``) as::

    python -B -I -c "<bootstrap>" <package root> <mode>

``-I`` keeps the user's environment and site folder out; the bootstrap puts only the NEXUS
package root on ``sys.path``, and this file adds the module's own folder.  The first line on
stdin is the load message.  File descriptor 1 is kept for the protocol and the module's own
``print`` goes to stderr, so nothing a module writes can be taken for an answer by accident.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, BinaryIO

from nexus_desktop.children.jsonlines import Channel

BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from nexus_desktop.modules.runtime.child import main; main(sys.argv[2:])"
)
_ERROR_CHARS = 400
_PARENT_CHECK_SECONDS = 0.5


def _die_with_the_app() -> None:
    """When the app dies without stopping us (SIGKILL, a crash), end this process and its programs.

    A module stuck in a call never reads its closed stdin, so only the parent pid changing can
    tell it.  The functions are bound now, before the module's code runs and could replace them.
    """
    if sys.platform == "win32":  # no re-parenting there; a job object would do it
        return
    parent, own_group = os.getppid(), os.getpgid(0)  # our programs stay in it (seccomp: no setsid)
    getppid, sleep, killpg, exit_now = os.getppid, time.sleep, os.killpg, os._exit

    def watch() -> None:
        while getppid() == parent:
            sleep(_PARENT_CHECK_SECONDS)
        try:
            killpg(own_group, signal.SIGKILL)  # programs the module started, then us
        finally:
            exit_now(1)

    threading.Thread(target=watch, name="nexus-parent-watch", daemon=True).start()


def _policy(load: dict[str, Any]) -> Any:
    """The audit hook's copy of what the kernel enforces (``containment``), to explain refusals.

    ``granted`` is what this process may do: during validation only the declared read paths
    (``containment.validation_grant``); the declared permissions once approved.
    """
    from nexus_desktop.modules.runtime.audit import AccessPolicy, expand

    permissions = load.get("granted", load.get("permissions", {}))
    import nexus_desktop

    system = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    if getattr(sys, "frozen", False):
        system.add(sys.executable)  # in the bundle, Python modules load from the program's own archive
    package = str(Path(nexus_desktop.__file__).resolve().parent)
    reads = [*system, package, load["folder"], *permissions.get("read", ()), "/dev/urandom"]
    writes = [load["data_dir"], *load.get("scratch_dirs", ()), *permissions.get("write", ()), os.devnull]
    listable = [os.path.realpath(entry) for entry in sys.path if entry]
    return AccessPolicy(
        module=load["name"],
        read_roots=tuple(expand(path) for path in reads),
        write_roots=tuple(expand(path) for path in writes),
        listable=tuple(listable),
        network=tuple(permissions.get("network", ())),
        gatekeeper=load.get("gatekeeper"),
        subprocess=bool(permissions.get("subprocess")),
        native_code=bool(permissions.get("native_code")),
        fixed_working_folder=load.get("op") != "test",
        loopback_to_own_servers=load.get("op") == "test",
    )


def describe_error(error: BaseException, folder: str | None = None) -> str:
    """``Type: message (file.py line n)`` naming the module's own line where it went wrong."""
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    if len(text) > _ERROR_CHARS:
        text = text[: _ERROR_CHARS - 1] + "…"
    try:
        frames = list(traceback.extract_tb(error.__traceback__))
    except Exception:
        frames = []
    own = [frame for frame in frames if folder and frame.filename.startswith(folder)]
    if own:
        text += f" ({Path(own[-1].filename).name} line {own[-1].lineno})"
    return text


def _install_hook(load: dict[str, Any], channel: Channel) -> None:
    from nexus_desktop.modules.runtime.audit import disarm, install

    def report(problem: str) -> None:
        channel.send({"event": "refused", "message": problem})

    disarm(_policy(load))
    install(_policy(load), report)


def _prepare(load: dict[str, Any], channel: Channel) -> None:
    # Memory and CPU limits were set by the launcher (``sandbox.enter``) before this started.
    Path(load["data_dir"]).mkdir(parents=True, exist_ok=True)
    os.chdir(load["data_dir"])
    sys.path.insert(0, load["folder"])
    sys.dont_write_bytecode = True


def _load_plugin(load: dict[str, Any]) -> Any:
    """Import the entry point and register it; pluggy checks each hookimpl against its hookspec."""
    import pluggy

    from nexus_desktop.modules import hookspecs

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    module_name, _, attribute = load["entry_point"].partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    manager.register(target, name=load["name"])
    manager.check_pending()
    return manager


class _Module:
    """One loaded module and what it registered."""

    def __init__(self, manager: Any, load: dict[str, Any]) -> None:
        self.manager = manager
        self.load = load
        self.tools: dict[str, Callable[..., Any]] = {}
        self.tasks: dict[str, Callable[[], Any]] = {}
        self.panels: dict[str, Callable[[], Any]] = {}

    def implemented(self) -> list[str]:
        return sorted(
            name
            for name in self.manager.hook.__dict__
            if not name.startswith("_") and getattr(self.manager.hook, name).get_hookimpls()
        )

    def register_all(self) -> dict[str, Any]:
        tools: list[dict[str, Any]] = []
        characters: list[dict[str, Any]] = []
        tasks: list[dict[str, Any]] = []
        panels: list[dict[str, Any]] = []

        def add_tool(spec: Any) -> None:
            self.tools[spec.name] = spec.function
            tools.append(
                {"name": spec.name, "description": spec.description, "parameters": dict(spec.parameters)}
            )

        def add_character(card: Any, avatar: bytes | None = None) -> None:
            data = card.model_dump(mode="json") if hasattr(card, "model_dump") else dict(card)
            encoded = base64.b64encode(avatar).decode("ascii") if avatar else None
            characters.append({"card": data, "avatar": encoded})

        def add_task(spec: Any) -> None:
            self.tasks[spec.name] = spec.function
            tasks.append(
                {
                    "name": spec.name,
                    "description": spec.description,
                    "interval_seconds": spec.interval_seconds,
                }
            )

        def add_panel(spec: Any) -> None:
            self.panels[spec.name] = spec.render
            panels.append({"name": spec.name, "title": spec.title, "refresh_seconds": spec.refresh_seconds})

        hook = self.manager.hook
        hook.startup.call_historic(kwargs={"app_info": self.load.get("app_info", {})})
        hook.register_tools.call_historic(kwargs={"register": add_tool})
        hook.register_characters.call_historic(kwargs={"register": add_character})
        hook.register_scheduled_tasks.call_historic(kwargs={"register": add_task})
        hook.register_dashboard_panels.call_historic(kwargs={"register": add_panel})
        return {
            "tools": tools,
            "characters": characters,
            "tasks": tasks,
            "panels": panels,
            "hooks": self.implemented(),
            "pid": os.getpid(),
        }

    def handle(self, request: dict[str, Any]) -> Any:
        from nexus_desktop.modules.specs import MessageContext

        op = request.get("op")
        hook = self.manager.hook
        if op == "call_tool":
            function = self.tools[str(request["name"])]
            result = function(**dict(request.get("arguments") or {}))
            return result if isinstance(result, str) else json.dumps(result, default=str)
        if op in ("filter_message", "answer_message", "reply_did_finish"):
            context = MessageContext(**dict(request.get("context") or {}))
            # Whatever the hook returned goes back as it is (or its type's name when it is not
            # JSON): the host decides what counts as text and counts the rest as faults.
            if op == "filter_message":
                results = hook.message_will_send(message=str(request["message"]), context=context)
                return _as_sent(results[0]) if results else None
            if op == "answer_message":
                answer = hook.message_will_be_answered(message=str(request["message"]), context=context)
                return _as_sent(answer)
            hook.reply_did_finish(reply=str(request["reply"]), context=context)
            return None
        if op == "run_task":
            return self.tasks[str(request["name"])]()
        if op == "render_panel":
            return self.panels[str(request["name"])]()
        if op == "ping":
            return "pong"
        raise ValueError(f"unknown request {op!r}")


def _as_sent(value: Any) -> Any:
    plain = value is None or isinstance(value, str | int | float | bool | list | dict)
    return value if plain else {"not_text": type(value).__name__}


def _serve(stdin: BinaryIO, channel: Channel) -> None:
    load = json.loads(stdin.readline())
    folder = str(Path(load["folder"]).resolve())
    _prepare(load, channel)
    try:
        _install_hook(load, channel)
        module = _Module(_load_plugin(load), load)
        registrations = module.register_all()
    except BaseException as error:
        channel.send({"id": 0, "ok": False, "error": describe_error(error, folder)})
        return
    del load  # nothing the module can reach through our frames should outlive its use
    channel.send({"id": 0, "ok": True, "result": registrations})
    while line := stdin.readline():
        request = json.loads(line)
        request_id = request.get("id")
        if request.get("op") == "shutdown":
            try:
                module.manager.hook.shutdown()
            finally:
                channel.send({"id": request_id, "ok": True, "result": None})
            return
        try:
            result = module.handle(request)
        except BaseException as error:  # SystemExit and MemoryError too: one failed call
            channel.send({"id": request_id, "ok": False, "error": describe_error(error, folder)})
            continue
        channel.send({"id": request_id, "ok": True, "result": result})
    # Our input ended without a shutdown: the app is gone.  End the programs the module started
    # now (this process too), rather than leave them to the parent watcher's next look.
    if hasattr(os, "killpg"):
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _validate(stdin: BinaryIO, channel: Channel) -> None:
    from nexus_desktop.modules.runtime.validate import hook_check, static_checks

    load = json.loads(stdin.readline())
    checks = static_checks(Path(load["folder"]), load.get("permissions", {}), load.get("test_file"))
    _prepare(load, channel)
    _install_hook(load, channel)
    checks.append(hook_check(lambda: _Module(_load_plugin(load), load).implemented(), load))
    channel.send({"id": 0, "ok": True, "result": checks})


def _test(stdin: BinaryIO, channel: Channel) -> None:
    load = json.loads(stdin.readline())
    load["op"] = "test"
    import pytest

    scratch = load["scratch_dirs"][0]
    _prepare(load, channel)
    os.chdir(load["folder"])  # pytest builds its collection tree from the working folder
    _install_hook(load, channel)
    output = io.StringIO()
    started = time.monotonic()
    with redirect_stdout(output):
        code = pytest.main(
            [
                str(Path(load["folder"]) / load["test_file"]),
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:faulthandler",
                "--capture=sys",
                "-c",
                os.devnull,
                "--rootdir",
                load["folder"],
                "--confcutdir",
                load["folder"],
                "--basetemp",
                os.path.join(scratch, "pytest"),
            ]
        )
    lines = output.getvalue().strip().splitlines()
    channel.send(
        {
            "id": 0,
            "ok": True,
            "result": {"exit_code": int(code), "output": lines[-30:], "seconds": time.monotonic() - started},
        }
    )


def main(argv: list[str]) -> None:
    channel = Channel()
    _die_with_the_app()
    mode = argv[0] if argv else "serve"
    stdin = sys.stdin.buffer
    code = 0
    try:
        {"serve": _serve, "validate": _validate, "test": _test}[mode](stdin, channel)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        # Skip interpreter teardown: a module's threads or atexit handlers must not keep us alive.
        os._exit(code)
