"""Building modules from the window: "build me …" in the chat becomes a live build card, New
module… in the gallery starts one, and the approval dialog shows a generated module's tests,
permissions and code.  The code is written by the replay server (a real OpenAI-compatible server on
loopback standing in for a remote provider) through the app's real task router, builder and
modules service; only the intent router is scripted (a trained router adapter is not the subject)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.builder.request import module_name_for
from tests.replay_server import GARBAGE, MODEL, ReplayServer, good_dice_module, running_replay_server
from tests.ui_support import LONG, data_dir, qt_loop, run  # noqa: F401  (fixtures)

DICE = "build me a dice roller"
DICE_NAME = module_name_for(DICE)
DICE_TESTS = [
    "test_both_tools_are_registered",
    "test_a_roll_adds_its_bonus",
    "test_one_sided_dice_always_roll_one",
    "test_ability_scores_are_six_between_3_and_18",
    "test_what_is_not_dice_is_refused",
]


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with running_replay_server() as replay:
        yield replay


@pytest.fixture
def core(
    data_dir: Path,  # noqa: F811
    qt_loop: asyncio.AbstractEventLoop,  # noqa: F811
    server: ReplayServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The real core, its code written on the replay server; the intent router says
    ``build_module`` for "build me …" and ``chat`` otherwise."""
    from nexus_desktop.chat.routing import IntentRouter
    from nexus_desktop.core import AppCore

    async def scripted_route(_self: IntentRouter, text: str) -> str:
        return "build_module" if text.lower().startswith("build me") else "chat"

    monkeypatch.setattr(IntentRouter, "route", scripted_route)
    app_core = AppCore()
    app_core.settings = app_core.settings.model_copy(
        update={"remote_base_url": server.base_url, "remote_model": MODEL, "threads": 1}
    )
    app_core.store.save_settings(app_core.settings)
    yield app_core
    run_until_closed(app_core)


def run_until_closed(app_core: Any) -> None:
    loop = asyncio.get_event_loop()
    task = loop.create_task(app_core.aclose())
    from PySide6.QtWidgets import QApplication

    while not task.done():
        QApplication.processEvents()


@pytest.fixture
def chat(qtbot: Any, core: Any) -> Any:
    """The chat view on the first character's chat (no chat model is needed to hand off a build)."""
    from nexus_desktop.ui.chat_view import ChatView

    async def no_model() -> None:
        return None

    view = ChatView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    view.bind(core, no_model)
    character = core.store.list_characters()[0]
    run(qtbot, view.open_character(character))
    return view


def cards_of(view: Any) -> list[Any]:
    from nexus_desktop.ui.build_card import BuildCard

    return [w for w in view.widgets if isinstance(w, BuildCard)]


def wait_status(qtbot: Any, card: Any, status: str) -> None:
    def reached() -> bool:
        shown = card.shown_build
        return shown is not None and shown.build.status == status

    qtbot.waitUntil(reached, timeout=LONG)


def send(qtbot: Any, view: Any, text: str) -> None:
    view.send(text)
    qtbot.waitUntil(lambda: view.generation_task is not None and view.generation_task.done(), timeout=LONG)


def test_build_me_in_chat_shows_a_build_card_not_a_reply_that_reaches_awaiting_approval(
    qtbot: Any, chat: Any, core: Any, server: ReplayServer
) -> None:
    server.script("dice roller", [good_dice_module(DICE_NAME)])
    before = len(core.store.list_messages(chat.chat_id))
    send(qtbot, chat, DICE)
    [card] = cards_of(chat)
    wait_status(qtbot, card, "awaiting_approval")
    # No chat reply was written: the user's message and the build's card, nothing else.
    stored = core.store.list_messages(chat.chat_id)[before:]
    assert [m.role for m in stored] == ["user", "tool"]
    assert stored[1].stats["build"]["build_id"] == card.build_id
    assert [w.role for w in chat.widgets[-2:]] == ["user", "tool"]
    steps = card.step_texts()
    assert steps[0].startswith("Plan · ")
    assert steps[1].startswith("Round 1 · manifest, code and tests generated from the module template")
    assert "its tests passed" in steps[1]
    assert steps[-1] == f"Result · {DICE_NAME} passed its tests and awaits your approval."
    assert f"remote: {MODEL}" in card.route_label.text() and card.badge.text() == "Awaiting approval"

    # Reopening the chat rebuilds the card from the stored build.
    chat.clear_chat()
    run(qtbot, chat.open_character(core.store.list_characters()[0]))
    [again] = cards_of(chat)
    wait_status(qtbot, again, "awaiting_approval")
    assert again.build_id == card.build_id and again.step_texts() == steps


def test_only_build_module_or_a_typed_build_command_hands_a_message_to_the_builder(
    qtbot: Any, core: Any, server: ReplayServer
) -> None:
    """A message the router calls ``chat`` is answered as a chat turn; ``/build …`` is built
    whatever the router says."""
    from nexus_desktop.chat.service import BuildStarted, build_request

    assert build_request("/build a coin flipper") == "a coin flipper"
    assert build_request("/build") is None and build_request("please /build x") is None
    character = core.store.list_characters()[0]
    chat_row, _ = run(qtbot, core.chat.open_chat(character.id))

    async def send_one(text: str) -> list[Any]:
        events = []
        try:
            async for event in core.chat.send(chat_row.id, text):
                events.append(event)
        except Exception as error:  # a chat turn's reply may fail here: it is not the subject
            events.append(error)
        return events

    chatted = run(qtbot, send_one("what a lovely day"))
    assert not any(isinstance(e, BuildStarted) for e in chatted)
    assert run(qtbot, core.builds.list()) == [] and server.requests == []

    [_saved, started] = run(qtbot, send_one("/build a coin flipper"))
    assert isinstance(started, BuildStarted)
    [build] = run(qtbot, core.builds.list())
    assert (build.id, build.description, build.chat_id) == (started.build_id, "a coin flipper", chat_row.id)
    assert run(qtbot, core.builds.wait(build.id)).finished  # nothing scripted answers it: it fails


def test_a_failed_build_shows_its_reason_and_every_round_with_its_diff_and_test_output(
    qtbot: Any, chat: Any, server: ReplayServer
) -> None:
    server.script("dice roller", [GARBAGE])
    send(qtbot, chat, DICE)
    [card] = cards_of(chat)
    wait_status(qtbot, card, "failed")
    steps = card.step_texts()
    rounds = [step for step in steps if step.startswith("Round ")]
    assert len(rounds) == 4  # the first generation and three repairs
    assert "self-repair with the errors" in rounds[1]
    assert "fresh context" in rounds[3]
    assert all("failed: " in step for step in rounds)
    assert steps[-1].startswith("Result · Failed after 4 rounds: ")
    assert card.badge.text() == "Failed"

    with qtbot.waitSignal(card.dialog_opened, timeout=LONG) as opened:
        card.open_round(4)
    dialog = opened.args[0]
    assert "could not be read as module files" in dialog.test_view.toPlainText()
    assert "Sure! Here is your module" in dialog.output_view.toPlainText()
    assert DICE in dialog.prompt_view.toPlainText()  # the fresh round still has the spec
    dialog.close()


def test_the_round_dialog_shows_the_diff_and_the_sandbox_test_output(
    qtbot: Any, chat: Any, server: ReplayServer
) -> None:
    server.script("dice roller", [good_dice_module(DICE_NAME)])
    send(qtbot, chat, DICE)
    [card] = cards_of(chat)
    wait_status(qtbot, card, "awaiting_approval")
    with qtbot.waitSignal(card.dialog_opened, timeout=LONG) as opened:
        card.open_round(1)
    dialog = opened.args[0]
    assert "+++ b/nexus-module.toml" in dialog.diff_view.toPlainText()
    tests = dialog.test_view.toPlainText()
    assert "✓  tests: Its tests passed: 5 passed" in tests
    assert dialog.diff_view.isReadOnly() and dialog.test_view.isReadOnly()
    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())] == [
        "Diff",
        "Test output",
        "Prompt",
        "Answer",
    ]
    dialog.close()


@pytest.fixture
def gallery(qtbot: Any, core: Any) -> Any:
    from nexus_desktop.ui.modules_page import ModulesPage

    page = ModulesPage()
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    with qtbot.waitSignal(page.refreshed, timeout=LONG):
        page.bind(core.modules)
    page.bind_builds(core)
    return page


def test_new_module_starts_a_build_and_its_card_opens_the_approval_dialog_of_a_generated_module(
    qtbot: Any, gallery: Any, core: Any, server: ReplayServer
) -> None:
    from nexus_desktop.ui.approval_dialog import GENERATED_NOTE
    from nexus_desktop.ui.build_round_dialog import ModuleCodeDialog
    from nexus_desktop.ui.new_module_dialog import NewModuleDialog

    description = "a dice roller for my table"
    name = module_name_for(description)
    server.script("dice roller", [good_dice_module(name)])
    assert gallery.new_module_button.isVisible()
    with qtbot.waitSignal(gallery.dialog_opened, timeout=LONG) as opened:
        gallery.new_module_button.click()
    dialog = opened.args[0]
    assert isinstance(dialog, NewModuleDialog) and not dialog.build_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.route_label.isVisible(), timeout=LONG)
    assert f"remote: {MODEL}" in dialog.route_label.text()
    dialog.input.setPlainText(description)
    dialog.build_button.click()
    qtbot.waitUntil(lambda: len(gallery.build_cards) == 1, timeout=LONG)
    [card] = gallery.build_cards.values()
    [stored] = run(qtbot, core.builds.list())
    assert (stored.id, stored.description) == (card.build_id, description)
    wait_status(qtbot, card, "awaiting_approval")
    # The gallery lists the module too, awaiting approval and marked as generated.
    qtbot.waitUntil(lambda: name in gallery.cards, timeout=LONG)
    meta = gallery.cards[name].findChild(type(card.title), "CardMeta")
    assert meta.text().endswith("· generated") and gallery.views[name].state == "awaiting_approval"

    with qtbot.waitSignal(card.dialog_opened, timeout=LONG) as opened:
        card.open_approval()
    approval = opened.args[0]
    assert "· generated" in approval.findChild(type(approval.tests_view), "PageSubtitle").text()
    notes = [label.text() for label in approval.findChildren(type(approval.tests_view), "WarningNote")]
    assert GENERATED_NOTE in notes
    assert approval.passed_tests == DICE_TESTS
    assert approval.tests_view.text().splitlines()[0] == f"✓  {DICE_TESTS[0]}"
    assert approval.access_lines == [
        "Nothing beyond its own folder: no network, no other files, no programs, no secrets."
    ]
    assert approval.approve_button.isEnabled()
    with qtbot.waitSignal(card.dialog_opened, timeout=LONG) as opened:
        approval.code_button.click()
    code = opened.args[0]
    assert isinstance(code, ModuleCodeDialog)
    files = [code.file_list.item(i).text() for i in range(code.file_list.count())]
    assert files[0] == "nexus-module.toml" and any(f.endswith("hooks.py") for f in files)
    assert 'origin = "generated"' in code.text_view.toPlainText()
    assert code.text_view.isReadOnly()
    code.close()
    approval.approve_button.click()  # approving from the card is the gallery's approval
    qtbot.waitUntil(lambda: "in the gallery it is on now" in card.step_texts()[-1], timeout=LONG)
    assert run(qtbot, core.modules.get(name)).state == "enabled"
    buttons = card.frame.findChildren(type(approval.approve_button))
    assert not [b for b in buttons if b.isVisible() and "approve" in b.text()]


def test_the_build_card_and_the_approval_dialog_fit_800_by_500(
    qtbot: Any, chat: Any, server: ReplayServer
) -> None:
    server.script("dice roller", [good_dice_module(DICE_NAME)])
    chat.resize(800 - 220, 500)  # the chat pane of an 800x500 window beside the compact sidebar
    send(qtbot, chat, DICE)
    [card] = cards_of(chat)
    wait_status(qtbot, card, "awaiting_approval")
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QLabel, QPushButton

    viewport = chat.scroll_area.viewport()

    def laid_out() -> bool:  # every wrapped line of every step shows, nothing runs off the right
        labels = [
            label for label in card.frame.findChildren(QLabel) if label.isVisible() and label.wordWrap()
        ]
        whole = all(label.height() >= label.heightForWidth(label.width()) for label in labels)
        right = card.frame.mapTo(viewport, QPoint(card.frame.width(), 0)).x()
        return bool(labels) and whole and right <= viewport.width()

    qtbot.waitUntil(laid_out, timeout=LONG)
    for button in card.frame.findChildren(QPushButton):
        assert button.width() >= button.minimumSizeHint().width(), button.text()
        assert button.accessibleName()
    with qtbot.waitSignal(card.dialog_opened, timeout=LONG) as opened:
        card.open_approval()
    approval = opened.args[0]
    assert approval.minimumSizeHint().height() <= 500
    assert approval.minimumSizeHint().width() <= 800
    approval.close()


def test_a_module_that_needs_a_secret_asks_for_it_keeps_it_in_the_keyring_and_runs_its_tests(
    qtbot: Any, chat: Any, core: Any, server: ReplayServer
) -> None:
    from nexus_desktop.modules.runtime.supervisor import credential_key
    from nexus_desktop.ui.credential_dialog import CredentialDialog
    from tests.replay_server import steam_module

    request = "build me a tracker for my Steam playtime; it needs my Steam API key"
    name = module_name_for(request)
    games = [{"name": "Portal 2", "playtime_forever": 1200}, {"name": "Celeste", "playtime_forever": 90}]
    server.script("Steam playtime", [steam_module(name, games=games, expected=2)])
    send(qtbot, chat, request)
    [card] = cards_of(chat)
    wait_status(qtbot, card, "awaiting_approval")
    from PySide6.QtWidgets import QPushButton

    buttons = {b.text(): b for b in card.frame.findChildren(QPushButton) if b.isVisible()}
    assert "Enter api_key…" in buttons
    with qtbot.waitSignal(card.dialog_opened, timeout=LONG) as opened:
        buttons["Enter api_key…"].click()
    dialog = opened.args[0]
    assert isinstance(dialog, CredentialDialog)
    before = run(qtbot, core.modules.report(name))
    dialog.input.setText("STEAM-KEY-1234")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: "tests passed with it" in " ".join(card.step_texts()), timeout=LONG)
    assert card.step_texts()[-1] == "Secret · api_key saved; the module's tests passed with it."
    assert core.secrets.get(credential_key(name, "api_key")) == "STEAM-KEY-1234"
    report = run(qtbot, core.modules.report(name))
    assert report is not None and report["ok"] and report != before  # validated again, key kept
