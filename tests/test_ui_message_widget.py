"""A message in the real window while a reply streams, and at small window sizes: no speaker
prefix flashing by, a swipe counter that counts the alternative being written, and bubbles
whose last line is never cut off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from nexus_desktop.chat.events import ChatEvent, ReplySaved, ReplyToken
from nexus_desktop.llm.contract import ChatOutput, ReplyStats
from tests import ui_support
from tests.chat_server import MODEL, ChatServer, running_chat_server
from tests.ui_support import LONG, close_window, run, wait_reply_done

core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window

LONG_REPLY = (
    "*checks the long-range sensors, then turns to you* "
    + " ".join(f'"Sector {i} is clear, Captain, and the nebula holds still."' for i in range(12))
    + "\n\n- one\n- two\n\nLast line of the reply."
)


def stream(chat: Any, core: Any, pieces: list[str], saved_text: str, seen: list[str]) -> None:
    """A reply arriving piece by piece through the chat view's own painting; ``seen`` gets what
    the bubble shows after each piece has been painted."""

    async def reply() -> AsyncIterator[ChatEvent]:
        for piece in pieces:
            yield ReplyToken(piece)
            await asyncio.sleep(0.12)  # several of the view's 33 ms paints
            seen.append(chat.widgets[-1].text)
        saved = await core.db.call(core.store.add_message, chat.chat_id, "assistant", saved_text)
        yield ReplySaved(saved, ChatOutput(saved_text, ReplyStats(20, 4, 0.1, 0.05, 2048, "stop")))

    chat._start(chat._consume(reply(), sent_text=None, target=None))


def test_a_streamed_reply_never_shows_the_speaker_prefix(qtbot: Any, window: Any, core: Any) -> None:
    chat = window.chat_view
    name = chat.character.name
    seen: list[str] = []
    stream(chat, core, [name[:2], name[2:], ": Systems", " green."], "Systems green.", seen)
    wait_reply_done(qtbot, window)

    assert seen == ["", "", "Systems", "Systems green."]  # "Ve" and "Vega" wait behind the dots
    assert chat.widgets[-1].text == "Systems green."


def test_a_reply_that_only_starts_like_the_name_is_shown_as_it_comes(
    qtbot: Any, window: Any, core: Any
) -> None:
    chat = window.chat_view
    name = chat.character.name
    seen: list[str] = []
    stream(chat, core, [name[:2], "ry well."], f"{name[:2]}ry well.", seen)
    wait_reply_done(qtbot, window)

    assert seen == ["", f"{name[:2]}ry well."]


# The swipe counter, with a real OpenAI-compatible server standing in for the model ----------------


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with running_chat_server() as chat_server:
        yield chat_server


@pytest.fixture
def remote_window(qtbot: Any, data_dir: Path, qt_loop: Any, server: ChatServer) -> Iterator[Any]:
    from nexus_desktop.core import AppCore
    from nexus_desktop.ui.main_window import MainWindow

    app_core = AppCore()
    remote = {"source": "remote", "remote_base_url": server.base_url, "remote_model": MODEL}
    app_core.settings = app_core.settings.model_copy(update={**ui_support.MODEL_SETTINGS, **remote})
    app_core.store.save_settings(app_core.settings)
    main_window = MainWindow()
    main_window.resize(1280, 800)
    main_window.show()
    run(qtbot, main_window.attach(app_core))
    yield main_window
    close_window(qtbot, main_window, app_core)


def test_the_swipe_counter_counts_the_alternative_being_written(
    qtbot: Any, remote_window: Any, server: ChatServer
) -> None:
    chat = remote_window.chat_view
    core = remote_window.core
    core.store.add_message(chat.chat_id, "user", "Name the ship.")
    reply_row = core.store.add_message(chat.chat_id, "assistant", "The Kestrel.")
    core.store.add_swipe(reply_row.id, "The Wayfarer.")
    run(qtbot, chat.open_character(chat.character))
    reply = chat.widgets[-1]
    assert reply.swipe_counter.text() == "2/2"

    server.hold()
    qtbot.mouseClick(chat.composer.regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: server.waiting == 1, timeout=LONG)
    assert reply.swipe_counter.text() == "3/3"  # the third, being written: not 2/2
    assert reply.swipe_counter.isVisible() and "Writing alternative 3" in reply.swipe_counter.toolTip()
    server.release()
    wait_reply_done(qtbot, remote_window)
    assert reply.swipe_counter.text() == "3/3" and len(reply.message.swipes) == 3
    assert reply.text == "one two three four five"

    server.fail_chat = True  # a failed fourth goes back to the third
    qtbot.mouseClick(chat.composer.regenerate_button, Qt.MouseButton.LeftButton)
    wait_reply_done(qtbot, remote_window)
    assert reply.swipe_counter.text() == "3/3" and reply.text == "one two three four five"


# Small windows --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(800, 500), (860, 560), (1280, 800)])
def test_the_last_line_of_a_bubble_is_never_cut_off(
    qtbot: Any, window: Any, core: Any, size: tuple[int, int]
) -> None:
    chat = window.chat_view
    for text in (LONG_REPLY, "Short one.", LONG_REPLY + "\n\n```\ncode line\n```"):
        core.store.add_message(chat.chat_id, "assistant", text)
    run(qtbot, chat.open_character(chat.character))
    window.resize(*size)
    qtbot.waitUntil(lambda: window.width() == size[0], timeout=10_000)
    qtbot.wait(100)  # the layout settles

    for widget in chat.widgets[-3:]:
        label = widget.text_label
        needed = label.heightForWidth(label.width())
        assert label.height() >= needed, (size, label.height(), needed)
        inside = widget.bubble.contentsRect()
        assert label.geometry().bottom() <= inside.bottom()
        assert label.geometry().right() <= inside.right()
        assert widget.bubble.geometry().right() <= widget.width()

    # Scrolled to the end, the last bubble and its buttons are inside the visible area.
    bar = chat.scroll_area.verticalScrollBar()
    bar.setValue(bar.maximum())
    viewport = chat.scroll_area.viewport()
    last = chat.widgets[-1]
    bottom = last.bubble.mapTo(viewport, last.bubble.rect().bottomLeft()).y()
    assert 0 < bottom <= viewport.height()


# A long chat: earlier messages load while scrolling up, and only a window of them has widgets ---


def fill_chat(core: Any, chat_id: int, count: int, text: str = "Message") -> None:
    from sqlmodel import Session

    from nexus_desktop.db.tables import Message

    with Session(core.store.engine) as session:
        for position in range(1, count + 1):
            role = "user" if position % 2 else "assistant"
            swipes = [f"{text} {position}."]
            session.add(Message(chat_id=chat_id, position=position, role=role, swipes=swipes))
        session.commit()


def on_screen(chat: Any) -> tuple[int, int]:
    """The first message on screen: its position in the chat and its height on the viewport."""
    bar = chat.scroll_area.verticalScrollBar()
    first = next(w for w in chat.widgets if w.y() + w.height() > bar.value())
    return first.message.position, first.y() - bar.value()


def test_a_long_chat_loads_earlier_messages_while_scrolling_up_and_keeps_few_widgets(
    qtbot: Any, window: Any, core: Any
) -> None:
    from nexus_desktop.ui.lazy_history import MOST_SHOWN, OPEN_NEWEST

    chat = window.chat_view
    total = OPEN_NEWEST + 300
    fill_chat(core, chat.chat_id, total)
    run(qtbot, chat.open_character(chat.character))
    assert chat.widgets[-1].text == f"Message {total}."
    # The chat opened with its newest messages; the rest arrive in the background.
    qtbot.waitUntil(lambda: len(chat._earlier) + len(chat.widgets) == total + 1, timeout=LONG)

    bar = chat.scroll_area.verticalScrollBar()
    while chat.widgets[0].message.position > 0:
        bar.setValue(bar.value() - 400)  # a few wheel notches up
        shown = on_screen(chat)
        qtbot.wait(30)
        assert on_screen(chat) == shown or bar.value() == 0  # what was on screen did not jump
        assert len(chat.widgets) <= MOST_SHOWN + 5
    positions = [w.message.position for w in chat.widgets]
    assert positions == sorted(positions) and positions[0] == 0
    assert chat.history.later and not chat.widgets[-1].swipe_widgets[0].isVisible()

    # A reply while scrolled up goes below the chat's newest message, which is shown again.
    seen: list[str] = []
    stream(chat, core, ["Back at the end."], "Back at the end.", seen)
    wait_reply_done(qtbot, window)
    assert [w.text for w in chat.widgets[-2:]] == [f"Message {total}.", "Back at the end."]
    assert not chat.history.later


def test_messages_taken_off_screen_free_their_widgets(qtbot: Any, window: Any, core: Any) -> None:
    """Switching chats (or scrolling a long one) must not leave message widgets behind: each one
    not freed kept a third of a megabyte and slowed every later garbage collection."""
    import gc

    from nexus_desktop.ui.message_widget import MessageWidget

    chat = window.chat_view
    fill_chat(core, chat.chat_id, 40, "Leak check")  # user messages and replies
    for _ in range(3):
        run(qtbot, chat.open_character(chat.character))
    qtbot.wait(50)  # deleteLater runs
    gc.collect()

    def ours(thing: object) -> bool:  # a widget of this test's messages, freed or not
        return isinstance(thing, MessageWidget) and thing.message.content.startswith("Leak check")

    alive = [thing for thing in gc.get_objects() if ours(thing)]
    assert len(alive) == len([w for w in chat.widgets if ours(w)]) == 40
