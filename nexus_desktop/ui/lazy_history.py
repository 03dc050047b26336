"""A long chat in the chat view: earlier messages load as the user scrolls up, and only a window
of them has widgets.

A message widget costs about 2 ms to build and a third of a megabyte, and Qt lays the whole
column out again whenever one is added, so a view holding thousands of them stalls for hundreds
of milliseconds.  The view shows at most ``MOST_SHOWN`` messages: near the top, a few earlier ones
are added per event-loop turn (the text on screen stays where it is) and, past the limit, the
newest shown ones give their widgets back and wait in ``later``; scrolling down brings them back
the same way.  A chat opened with only its newest messages fetches the rest from the database
in the background.

``ChatView`` keeps ``_earlier`` (older messages without widgets) and ``widgets``; ``later`` is
the part kept here.  Anything that adds at the bottom (a reply) calls ``show_newest()`` first.
The "Show earlier messages" button asks for a page (``load_earlier``) and gets it the same way,
a few messages per turn; a search result far up gets widgets around it (``reveal``).
"""

from __future__ import annotations

import gc
import logging
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtWidgets import QScrollBar

from nexus_desktop.ui.chat_stream import FIRST_MESSAGE_INDEX
from nexus_desktop.ui.gc_pause import paused_garbage_collection
from nexus_desktop.ui.ops import QueryOp

if TYPE_CHECKING:
    from nexus_desktop.db.store import Store
    from nexus_desktop.db.tables import Message
    from nexus_desktop.ui.chat_view import ChatItem, ChatView

log = logging.getLogger(__name__)

OPEN_NEWEST = 200
"""A chat opens with this many of its newest messages; the rest follow in the background."""
MOST_SHOWN = 60
STEP_SECONDS = 0.012
"""How long one event-loop turn may spend adding messages while the view is near an end."""
REVEAL_AROUND = 8
"""A message revealed far from those shown gets widgets with this many before it and after it."""


def _read_earlier(store: Store, chat_id: int, before: int) -> list[Message]:
    """The chat's messages before ``before``, exempt from full garbage collections.

    Thousands of messages stay while the chat is open; a full collection would walk them all
    (60-90 ms with every thread waiting, the Qt thread too).  So none runs while they are read,
    and they are frozen before collection resumes, as start-up's objects are
    (``lifecycle.freeze_startup_heap``).  They hold no cycles: closing the chat frees them.
    Unlike start-up, no full collection runs first (that is the stall avoided), so a cycle of
    garbage that happens to exist at that moment stays until the app quits.
    """
    with paused_garbage_collection():
        messages = store.list_messages(chat_id, before=before)
        gc.freeze()
    return messages


class LazyHistory(QObject):
    def __init__(self, view: ChatView) -> None:
        super().__init__(view)
        self.view = view
        self.later: list[Message] = []
        """Newer messages than those shown, when the user has scrolled far up."""
        self._wanted = 0
        """Earlier messages asked for (``load_earlier``) and not added yet."""
        self._fetching: int | None = None  # the chat whose earlier messages are being fetched
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._step)
        view.scroll_area.verticalScrollBar().valueChanged.connect(self._scrolled)

    def shown(self, messages: list[Message]) -> None:
        """The view shows these messages afresh (the newest of them have widgets)."""
        self.later, self._wanted = [], 0
        chat_id = self.view.chat_id
        if messages and messages[0].position > 0 and chat_id is not None and self._fetching != chat_id:
            self._fetch_earlier(chat_id, messages[0].position)

    def show_newest(self) -> None:
        """Before anything is added at the bottom: the newest messages get their widgets back."""
        if self.later:
            view = self.view
            view._show_messages([*view._earlier, *(w.message for w in view.widgets), *self.later])

    def load_earlier(self, count: int) -> None:
        """Add ``count`` earlier messages above those shown, a few per event-loop turn; the view
        stays at the top meanwhile (where the button that asks for them is), so they are what it
        shows, and then loads on as scrolling up does."""
        self._wanted = count
        self._bar().setValue(0)
        self._timer.start()

    def reveal(self, message_id: int) -> ChatItem | None:
        """The message's widget; a message without one gets widgets around it first (those shown
        give theirs back and wait as when scrolled away).  None when the view does not hold it."""
        view = self.view
        widget = next((w for w in view.widgets if w.message.id == message_id), None)
        if widget is not None:
            return widget
        messages = [*view._earlier, *(w.message for w in view.widgets), *self.later]
        index = next((i for i, m in enumerate(messages) if m.id == message_id), None)
        if index is None:
            return None
        for shown in list(view.widgets):
            self._give_back(shown)
        start, end = max(0, index - REVEAL_AROUND), index + REVEAL_AROUND + 1
        view._earlier, self.later = messages[:start], messages[end:]
        for message in messages[start:end]:
            self._insert(len(view.widgets), view._make_widget(message))
        view._stick_to_bottom = False
        view._refresh_last()
        view._update_earlier_button()
        return view.widgets[index - start]

    # Fetching what the chat opened without ------------------------------------------------------

    def _fetch_earlier(self, chat_id: int, before: int) -> None:
        core = self.view.core
        if core is None:
            return
        self._fetching = chat_id

        def fetched(messages: list[Message]) -> None:
            self._fetching = None
            view = self.view
            known = [*view._earlier, *(w.message for w in view.widgets)]
            if view.chat_id != chat_id or not known:
                return
            first = known[0].position
            view._earlier[:0] = [m for m in messages if m.position < first]
            view._update_earlier_button()
            self._scrolled(self._bar().value())

        def failed(error: BaseException) -> None:
            self._fetching = None
            log.warning("Could not read the chat's earlier messages: %s", error)

        QueryOp(
            parent=self, op=core.db.call(_read_earlier, core.store, chat_id, before), success=fetched
        ).failure(failed).run_in_background()

    # Scrolling --------------------------------------------------------------------------------

    def _bar(self) -> QScrollBar:
        return self.view.scroll_area.verticalScrollBar()

    def _scrolled(self, value: int) -> None:
        bar = self._bar()
        if self.later:
            self.view._stick_to_bottom = False  # the bottom shown is not the chat's end
        wants_earlier = (value < bar.pageStep() or self._wanted > 0) and bool(self.view._earlier)
        near_bottom = value > bar.maximum() - bar.pageStep() and bool(self.later)
        if wants_earlier or near_bottom:
            self._timer.start()

    def _step(self) -> None:
        """Add messages at the end the view is near for up to ``STEP_SECONDS`` (a widget takes a
        few milliseconds to build: the next turn goes on), keeping what is on screen in place
        (or, while a page asked for comes in, the view at the top)."""
        view, bar = self.view, self._bar()
        pinned = self._wanted > 0  # a page asked for (``load_earlier``): the view stays at the top
        anchor = None if pinned else self._anchor()
        offset = anchor.y() - bar.value() if anchor is not None else 0
        deadline = time.perf_counter() + STEP_SECONDS
        near_top = bar.value() < bar.pageStep()
        near_bottom = bar.value() > bar.maximum() - bar.pageStep()
        while time.perf_counter() < deadline:
            if (near_top or self._wanted > 0) and view._earlier:
                self._add_earlier()
                self._wanted = max(0, self._wanted - 1)
            elif near_bottom and self.later and not near_top:
                self._add_later()
            else:
                break
        if not view._earlier and self._fetching is None:
            self._wanted = 0  # the chat's first message is shown (not: its earlier ones are on the way)
        view._refresh_last()
        view._update_earlier_button()
        if anchor is not None and anchor in view.widgets:
            for _ in range(3):  # the column, the container, the scroll area
                QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
            bar.setValue(anchor.y() - offset)
        self._scrolled(bar.value())  # still near an end: more on the next turn

    def _anchor(self) -> ChatItem | None:
        """The first message widget on screen."""
        top = self._bar().value()
        return next((w for w in self.view.widgets if w.y() + w.height() > top), None)

    def _add_earlier(self) -> None:
        view = self.view
        self._insert(0, view._make_widget(view._earlier.pop()))
        extra = len(view.widgets) - MOST_SHOWN
        if extra > 0:
            given_back = view.widgets[-extra:]
            self.later[:0] = [w.message for w in given_back]
            for widget in given_back:
                self._give_back(widget)

    def _add_later(self) -> None:
        view = self.view
        self._insert(len(view.widgets), view._make_widget(self.later.pop(0)))
        extra = len(view.widgets) - MOST_SHOWN
        if extra > 0:
            given_back = view.widgets[:extra]
            view._earlier.extend(w.message for w in given_back)
            for widget in given_back:
                self._give_back(widget)

    def _insert(self, index: int, widget: ChatItem) -> None:
        self.view.widgets.insert(index, widget)
        self.view.column.insertWidget(FIRST_MESSAGE_INDEX + index, widget)
        widget.show()  # now, not in a later turn as Qt would: its height counts in this layout

    def _give_back(self, widget: ChatItem) -> None:
        # As ChatView._remove does, without refreshing the last reply for each one.
        self.view.widgets.remove(widget)
        self.view.column.removeWidget(widget)
        widget.hide()
        widget.deleteLater()
