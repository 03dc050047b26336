"""Every hook in ``modules/hookspecs.py`` is called by the running app, not only by tests of the
module runtime: one module implements all nine, each writes down that it was called (in its own
data folder, from its own sandboxed process), and the app is driven as a person drives it:
the module is approved, a chat message is sent, a scheduled task runs, the Dashboards page reads
the module's panel, and the app closes."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from nexus_desktop.chat.events import ReplySaved, ToolCalled
from nexus_desktop.db.store import Store
from nexus_desktop.modules import hookspecs
from nexus_desktop.settings import Settings
from tests.chat_server import MODEL, running_chat_server
from tests.hostile.modules import write_module

pytestmark = pytest.mark.keyring

HOOKS = [
    "startup",
    "shutdown",
    "register_tools",
    "register_characters",
    "register_scheduled_tasks",
    "register_dashboard_panels",
    "message_will_send",
    "message_will_be_answered",
    "reply_did_finish",
]

EVERY_HOOK = """
from pathlib import Path

from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import DashboardPanelSpec, ScheduledTaskSpec, ToolSpec

LOG = []


def called(what):
    with open(LOG[0], "a") as log:
        log.write(what + "\\n")


class Plugin:
    @hookimpl
    def startup(self, app_info):
        LOG.append(str(Path(app_info["module_dir"]) / "calls.log"))
        called("startup")

    @hookimpl
    def shutdown(self):
        called("shutdown")

    @hookimpl
    def register_tools(self, register):
        called("register_tools")
        register(ToolSpec("everyhook.ping", "Answer pong.", {"type": "object", "properties": {}},
                          lambda: called("tool ran") or "pong"))

    @hookimpl
    def register_characters(self, register):
        called("register_characters")
        register({"spec": "chara_card_v2", "spec_version": "2.0",
                  "data": {"name": "Hooky", "description": "Made by a module.", "first_mes": "Hi."}})

    @hookimpl
    def register_scheduled_tasks(self, register):
        called("register_scheduled_tasks")
        register(ScheduledTaskSpec("everyhook.tick", "Tick.", 3600, lambda: called("task ran") or "ticked"))

    @hookimpl
    def register_dashboard_panels(self, register):
        called("register_dashboard_panels")
        gauge = lambda: called("panel rendered") or {"level": 7}
        register(DashboardPanelSpec("everyhook.gauge", "Gauge", gauge))

    @hookimpl
    def message_will_send(self, message, context):
        called("message_will_send")
        return message.replace("secret plan", "[filtered]")

    @hookimpl
    def message_will_be_answered(self, message, context):
        called("message_will_be_answered")
        return "answered by the module" if message.startswith("knock knock") else None

    @hookimpl
    def reply_did_finish(self, reply, context):
        called("reply_did_finish")


plugin = Plugin()
"""


def use_module_and_server(data_dir: Path, developer_dir: Path, base_url: str) -> None:
    """Settings for an app that loads the developer folder's modules and talks to the test server."""
    store = Store(data_dir / "nexus.db")
    settings = Settings(
        modules_developer_dir=str(developer_dir),
        source="remote",
        remote_base_url=base_url,
        remote_model=MODEL,
        max_tokens=8,
    )
    store.save_settings(settings)
    store.close()


def test_the_running_app_calls_every_hook_a_module_implements(
    private_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from nexus_desktop.core import AppCore

    declared = [name for name, value in vars(hookspecs).items() if hasattr(value, "nexus_spec")]
    assert sorted(HOOKS) == sorted(declared)  # the list above is every hook there is
    write_module(tmp_path / "dev" / "everyhook", "everyhook", code=EVERY_HOOK, hooks=HOOKS)
    monkeypatch.setenv("NEXUS_LOAD_MODULES", "everyhook")  # not the bundled modules' processes
    log = private_data_dir / "module-data" / "everyhook" / "calls.log"

    with running_chat_server() as server:
        use_module_and_server(private_data_dir, tmp_path / "dev", server.base_url)

        async def use_the_app() -> None:
            core = AppCore()
            try:
                await core.start_modules(watch=False)
                await core.start_scheduler()
                await core.modules.approve(await core.modules.review("everyhook"))
                await core.module_characters.wait()
                hooky = next(c for c in core.store.list_characters() if c.name == "Hooky")
                assert hooky.origin == "everyhook"

                chat, _ = await core.chat.new_chat(hooky.id or 0)
                assert chat.id is not None
                events = [e async for e in core.chat.send(chat.id, "my secret plan")]
                assert any(isinstance(e, ReplySaved) for e in events)
                assert "[filtered]" in str(server.chat_requests()[-1])  # the model saw the filter's text
                assert "secret plan" not in str(server.chat_requests()[-1])
                answered = [e async for e in core.chat.send(chat.id, "knock knock")]
                saved = [e for e in answered if isinstance(e, ReplySaved)]
                assert saved and saved[-1].message.content == "answered by the module"
                used = [e async for e in core.chat.send(chat.id, "/everyhook.ping")]
                assert any(isinstance(e, ToolCalled) and e.result.content == "pong" for e in used)
                # The app's own clock is offered beside the module's tool (modules/builtin.py).
                assert {"nexus.clock", "everyhook.ping"} <= {t.name for t in core._tools().tools()}
                await core.chat.pipeline.wait_finished()

                run = await core.scheduler.run_now("everyhook.tick")
                assert run.outcome == "ok", run.detail
                for _ in range(100):  # the app's observer logs each run, from a thread of its own
                    if "Scheduled task everyhook.tick: ok" in caplog.text:
                        break
                    await asyncio.sleep(0.05)
                assert "Scheduled task everyhook.tick: ok" in caplog.text
                # What the Dashboards page's module panels do every refresh_seconds:
                [panel] = [p for p in core.modules.supervisor.panels() if p.module == "everyhook"]
                shown = await core.modules.supervisor.render_panel(panel.module, panel.name)
                assert shown.ok and json.loads(shown.content) == {"level": 7}
            finally:
                await core.aclose()

        with caplog.at_level(logging.INFO, logger="nexus_desktop.core"):
            asyncio.run(use_the_app())

    calls = set(log.read_text().splitlines())
    assert set(HOOKS) <= calls, f"never called: {sorted(set(HOOKS) - calls)}"
    assert {"tool ran", "task ran", "panel rendered"} <= calls


def test_nexus_chat_runs_the_modules_chat_hooks_too(
    private_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nexus chat`` goes through the same interceptors as the window: a module's answer
    replaces the model's, and its filter changes what the model is sent."""
    from tests.test_cli import nexus

    write_module(tmp_path / "dev" / "everyhook", "everyhook", code=EVERY_HOOK, hooks=HOOKS)
    with running_chat_server() as server:
        use_module_and_server(private_data_dir, tmp_path / "dev", server.base_url)
        monkeypatch.setenv("NEXUS_LOAD_MODULES", "everyhook")

        async def approve() -> None:
            from nexus_desktop.core import AppCore

            core = AppCore()
            try:
                await core.modules.start()
                await core.modules.approve(await core.modules.review("everyhook"))
            finally:
                await core.aclose()

        asyncio.run(approve())
        answered = nexus("chat", "--new", "knock knock", data_dir=private_data_dir)
        assert answered.returncode == 0, answered.stderr
        assert "answered by the module" in answered.stdout
        filtered = nexus("chat", "my secret plan", data_dir=private_data_dir)
        assert filtered.returncode == 0, filtered.stderr
        sent = str(server.chat_requests()[-1])
        assert "[filtered]" in sent and "secret plan" not in sent
