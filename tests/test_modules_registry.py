"""The module host: one bad module never hides the others, and the gallery sees every module."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.discovery import discover
from nexus_desktop.modules.errors import InstallError, TransitionError
from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.lifecycle import ModuleState
from nexus_desktop.modules.registry import (
    ModuleHost,
    filter_message,
    load_allowlist,
    make_plugin_manager,
)
from nexus_desktop.modules.specs import MessageContext, SpecError, ToolSpec
from tests.hostile.modules import manifest_data, write_module, zip_folder

S = ModuleState


def host_for(store: Store, tmp_path: Path, **options: Any) -> ModuleHost:
    options.setdefault("bundled_dir", tmp_path / "bundled")
    options.setdefault("user_dir", tmp_path / "modules")
    options.setdefault("environ", {})
    return ModuleHost(store.engine, **options)


def hostile_collection(root: Path, outside: Path) -> dict[str, str]:
    """Good and hostile modules side by side in ``root``; returns folder -> expected error text."""
    write_module(root / "a-good", "good-one")
    write_module(root / "z-good", "good-two")

    write_module(root / "traversal", "traversal", test_file="../../outside.py")

    linked = write_module(root / "linked", "linked")
    os.symlink(outside, linked / "data.txt")

    huge = write_module(root / "huge", "huge")
    (huge / "nexus-module.json").write_bytes(b" " * (10 * 1024 * 1024))

    write_module(root / "twin", "good-one")
    (root / "not-a-module").mkdir()
    return {
        "traversal": "field 'test_file': '../../outside.py' uses '..' to leave the module folder",
        "linked": f"data.txt in linked is a link to {outside}, outside the module",
        "huge": "nexus-module.json is 10,240 KB, over the 64 KB limit",
        "twin": "The module name 'good-one' is already used by a built-in module",
        "not-a-module": "not-a-module has no nexus-module.toml",
    }


def test_each_hostile_module_is_reported_precisely_and_the_good_ones_are_still_found(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("password")
    bundled = tmp_path / "bundled"
    expected = hostile_collection(bundled, outside)

    found = {item.path.name: item for item in discover(bundled_dir=bundled, user_dir=tmp_path / "none")}

    assert found["a-good"].ok and found["z-good"].ok
    for folder, words in expected.items():
        error = found[folder].error
        assert error is not None and words in error, folder


def test_hostile_modules_never_reach_the_database_but_show_as_broken_cards(
    store: Store, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("password")
    expected = hostile_collection(tmp_path / "bundled", outside)
    host = host_for(store, tmp_path)
    host.refresh()
    assert {row.name for row in host.lifecycle.records()} == {"good-one", "good-two"}
    cards = {card.path.rsplit("/", 1)[-1]: card for card in host.list_modules()}
    for folder in expected:
        assert cards[folder].badge == "Broken"
        error = cards[folder].error
        assert error and error in cards[folder].reason


def test_a_fifo_in_a_module_is_refused_without_blocking_discovery(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    write_module(dev / "good", "good")
    piped = write_module(dev / "piped", "piped")
    os.mkfifo(piped / "pipe")
    found = {
        item.path.name: item
        for item in discover(bundled_dir=tmp_path / "b", user_dir=tmp_path / "u", developer_dir=dev)
    }
    assert found["good"].ok
    assert found["piped"].error == "pipe in piped is not a regular file; remove it."


def test_duplicate_developer_module_names_are_reported(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    write_module(dev / "first", "echo")
    write_module(dev / "second", "echo")
    found = list(discover(bundled_dir=tmp_path / "b", user_dir=tmp_path / "u", developer_dir=dev))
    assert [item.ok for item in found] == [True, False]
    assert found[1].error == (
        f"The module name 'echo' is already used by a module in your developer folder in {dev / 'first'}; "
        "rename one of them."
    )


def test_an_installed_folder_whose_manifest_was_changed_is_refused(tmp_path: Path) -> None:
    user = tmp_path / "modules"
    write_module(user / "dice-roller" / "1.0.0", version="2.0.0")
    [item] = discover(bundled_dir=tmp_path / "b", user_dir=user)
    assert item.error == (
        "dice-roller/1.0.0 holds dice-roller 2.0.0 according to its manifest, so it was changed after "
        "install; reinstall the module."
    )


def test_install_review_approve_then_the_module_loads(store: Store, tmp_path: Path) -> None:
    host = host_for(store, tmp_path)
    source = write_module(tmp_path / "src", permissions={"network": ["api.dice.example"], "subprocess": True})
    row = host.install(zip_folder(source, tmp_path / "dice.zip"))
    assert (row.state, row.active) == (S.AWAITING_APPROVAL, True)
    assert host.modules_to_load() == []

    request = host.review("dice-roller")
    assert request.access == ["Connect to api.dice.example (web ports 80 and 443)", "Start other programs"]
    approved = host.approve(request)
    assert approved.state == S.ENABLED
    assert approved.approved_access == request.access
    assert [r.name for r in host.modules_to_load()] == ["dice-roller"]

    [card] = host.list_modules()
    assert (card.name, card.version, card.author, card.badge, card.loads) == (
        "dice-roller",
        "1.0.0",
        "Test Author",
        "On",
        True,
    )
    assert card.access == request.access


def test_approval_is_refused_if_the_files_changed_after_review(store: Store, tmp_path: Path) -> None:
    host = host_for(store, tmp_path)
    host.install(write_module(tmp_path / "src"))
    request = host.review("dice-roller")
    installed = tmp_path / "modules" / "dice-roller" / "1.0.0" / "dice_roller" / "main.py"
    installed.write_text("import os  # swapped after review\n")
    with pytest.raises(TransitionError, match="changed while you were reviewing them"):
        host.approve(request)


def test_a_new_version_needs_approval_and_rollback_returns_to_the_approved_one(
    store: Store, tmp_path: Path
) -> None:
    host = host_for(store, tmp_path)
    host.install(write_module(tmp_path / "v1"))
    host.approve(host.review("dice-roller"))

    upgraded = host.install(write_module(tmp_path / "v2", version="1.1.0"))
    assert (upgraded.version, upgraded.state) == ("1.1.0", S.AWAITING_APPROVAL)
    assert host.lifecycle.get("dice-roller", "1.0.0").state == S.DISABLED
    assert (tmp_path / "modules" / "dice-roller" / "1.0.0").is_dir()  # kept for rollback

    back = host.rollback("dice-roller")
    assert (back.version, back.state, back.active) == ("1.0.0", S.ENABLED, True)
    assert not host.lifecycle.get("dice-roller", "1.1.0").active
    [card] = host.list_modules()
    assert (card.version, card.versions) == ("1.0.0", ["1.1.0", "1.0.0"])

    with pytest.raises(TransitionError, match="dice-roller has no older version to go back to"):
        host.rollback("dice-roller")


def test_uninstall_removes_the_files_but_keeps_the_history(store: Store, tmp_path: Path) -> None:
    host = host_for(store, tmp_path)
    host.install(write_module(tmp_path / "v1"))
    host.uninstall("dice-roller")
    assert not (tmp_path / "modules" / "dice-roller").exists()
    assert host.list_modules() == []
    assert host.lifecycle.history("dice-roller")[-1].to_state == "removed"


def test_installing_over_a_built_in_name_is_refused(store: Store, tmp_path: Path) -> None:
    write_module(tmp_path / "bundled" / "dice", origin="built-in")
    host = host_for(store, tmp_path)
    with pytest.raises(InstallError, match="already provided by a built-in module; rename yours"):
        host.install(write_module(tmp_path / "src", version="9.0.0"))
    assert host.lifecycle.get("dice-roller").origin == "built-in"


# Environment switches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", frozenset()), (" a, b ,,", frozenset({"a", "b"}))],
)
def test_load_allowlist_parses_unset_safe_mode_and_names(
    value: str | None, expected: frozenset[str] | None
) -> None:
    environ = {} if value is None else {"NEXUS_LOAD_MODULES": value}
    assert load_allowlist(environ) == expected


def test_safe_mode_loads_no_module_but_keeps_built_in_plugins(store: Store, tmp_path: Path) -> None:
    for name in ("alpha", "beta"):
        write_module(tmp_path / "dev" / name, name)
    options = {"developer_dir": tmp_path / "dev"}
    host = host_for(store, tmp_path, **options)
    host.refresh()
    for name in ("alpha", "beta"):
        host.lifecycle.approve(name)
    assert {r.name for r in host.modules_to_load()} == {"alpha", "beta"}

    only_beta = host_for(store, tmp_path, environ={"NEXUS_LOAD_MODULES": "beta"}, **options)
    assert [r.name for r in only_beta.modules_to_load()] == ["beta"]

    safe = host_for(store, tmp_path, environ={"NEXUS_LOAD_MODULES": ""}, **options)
    assert safe.modules_to_load() == []
    assert {card.name: card.loads for card in safe.list_modules()} == {"alpha": False, "beta": False}
    assert safe.plugin_manager.has_plugin("nexus_desktop.modules.builtin")


def test_trace_hooks_logs_every_hook_call(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = host_for(store, tmp_path, environ={"NEXUS_TRACE_HOOKS": "1"})
    with caplog.at_level(logging.INFO, logger="nexus_desktop.modules.trace"):
        host.plugin_manager.hook.shutdown()
    assert any("hook shutdown" in message for message in caplog.messages)


# Hooks ------------------------------------------------------------------------------------------


def test_built_in_features_register_through_the_hooks() -> None:
    manager = make_plugin_manager()
    tools: list[ToolSpec] = []
    manager.hook.register_tools.call_historic(kwargs={"register": tools.append})
    [clock] = tools
    assert clock.name == "nexus.clock"
    assert "-" in clock.function()


def test_a_module_enabled_later_gets_the_registration_calls_replayed() -> None:
    manager = make_plugin_manager(builtins=False)
    tools: list[ToolSpec] = []
    manager.hook.register_tools.call_historic(kwargs={"register": tools.append})
    assert tools == []

    class LateModule:
        @hookimpl
        def register_tools(self, register: Any) -> None:
            register(ToolSpec("late.echo", "Echo the text.", {"type": "object"}, lambda text: text))

    manager.register(LateModule(), name="late")
    assert [tool.name for tool in tools] == ["late.echo"]


def test_message_filters_chain_and_a_failing_one_is_skipped() -> None:
    manager = make_plugin_manager(builtins=False)

    class Upper:
        @hookimpl
        def message_will_send(self, message: str, context: MessageContext) -> str:
            return message.upper()

    class Exclaim:
        @hookimpl(tryfirst=True)
        def message_will_send(self, message: str, context: MessageContext) -> str:
            return message + "!"

    class Broken:
        @hookimpl
        def message_will_send(self, message: str, context: MessageContext) -> str:
            raise RuntimeError("boom")

    class Quiet:
        @hookimpl
        def message_will_send(self, message: str, context: MessageContext) -> None:
            return None

    for plugin in (Upper(), Broken(), Quiet(), Exclaim()):
        manager.register(plugin)
    errors: list[str] = []
    result = filter_message(manager, "hi", MessageContext(), on_error=lambda name, _e: errors.append(name))
    assert result == "HI!"
    assert len(errors) == 1


def test_the_first_module_that_answers_a_message_wins() -> None:
    manager = make_plugin_manager(builtins=False)
    asked: list[str] = []

    class Dice:
        @hookimpl
        def message_will_be_answered(self, message: str, context: MessageContext) -> str | None:
            asked.append("dice")
            return "You rolled 7." if message.startswith("/roll") else None

    class Other:
        @hookimpl(trylast=True)
        def message_will_be_answered(self, message: str, context: MessageContext) -> str | None:
            asked.append("other")
            return "never"

    manager.register(Other())
    manager.register(Dice())
    assert (
        manager.hook.message_will_be_answered(message="/roll 2d6", context=MessageContext())
        == "You rolled 7."
    )
    assert asked == ["dice"]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: ToolSpec("Bad Name", "x", {"type": "object"}, print), "tool name 'Bad Name' is not allowed"),
        (lambda: ToolSpec("ok", "x", {"type": "string"}, print), "not a JSON schema of type 'object'"),
        (lambda: ToolSpec("ok", " ", {"type": "object"}, print), "has no description"),
    ],
)
def test_a_malformed_registration_fails_at_the_register_call(make: Any, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        make()


def test_gallery_manifest_fields_come_from_disk(store: Store, tmp_path: Path) -> None:
    data = manifest_data("notes", description="Keeps notes.", author="Grace", category="chat")
    folder = write_module(tmp_path / "dev" / "notes", "notes", manifest=data)
    host = host_for(store, tmp_path, developer_dir=tmp_path / "dev")
    [card] = host.list_modules()
    assert (card.display_name, card.description, card.author, card.category, card.source) == (
        "Notes",
        "Keeps notes.",
        "Grace",
        "chat",
        "developer",
    )
    assert json.loads((folder / "nexus-module.json").read_text())["name"] == "notes"


def test_one_failed_call_does_not_switch_a_module_off_but_changed_files_still_need_approval(
    store: Store, tmp_path: Path
) -> None:
    host = host_for(store, tmp_path)
    source = write_module(tmp_path / "src")
    host.install(zip_folder(source, tmp_path / "dice.zip"))
    host.approve(host.review("dice-roller"))

    failed = host.lifecycle.record_failure("dice-roller", {"error": "DiceError: not dice notation"})
    assert failed.state == S.FAILED
    assert [r.name for r in host_for(store, tmp_path).modules_to_load()] == ["dice-roller"]

    [installed] = (tmp_path / "modules" / "dice-roller").glob("*")
    next(installed.rglob("*.py")).write_text("# changed behind the approval\n")
    host.refresh()
    assert host.lifecycle.get("dice-roller").state == S.AWAITING_APPROVAL
    assert host.modules_to_load() == []
