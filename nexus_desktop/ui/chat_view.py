"""The chat: the message list, the banners and the composer, driving ``ChatService``.

Replies stream in through ``ChatService.send()`` / ``regenerate()`` on the qasync loop.  Tokens
are collected in a buffer and painted by a timer at most ~30 times a second, so a fast model
never floods the UI thread with relayouts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from nexus_desktop.ui.composer import Composer
from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import CHAT_MAX_COLUMN_WIDTH, CHAT_SIDE_MARGIN, MESSAGE_AVATAR_SIZE
from nexus_desktop.ui.widgets import BannerArea, push_button

if TYPE_CHECKING:
    import asyncio

    from nexus_desktop.chat.events import GovernorNotice
    from nexus_desktop.chat.service import ChatService
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Character, Message
    from nexus_desktop.ui.message_widget import MessageWidget
    from nexus_desktop.ui.tool_widget import ToolCallWidget
    from nexus_desktop.ui.widgets import Banner

    ChatItem = MessageWidget | ToolCallWidget

log = logging.getLogger(__name__)

FLUSH_INTERVAL_MS = 33
PAGE_SIZE = 60
FIRST_MESSAGE_INDEX = 2  # in the column: the empty-state label, the "earlier" button, then messages
PICK_HINT = "Pick a character on the left to start chatting."
QUEUED_HINT = "Loading your chat… your message will be sent as soon as it opens."


def describe_error(error: BaseException) -> str:
    """One sentence for the banner; errors we raise ourselves already read that way."""
    from nexus_desktop.cards.errors import CardError
    from nexus_desktop.llm.contract import ModelError
    from nexus_desktop.secrets import KeyringUnavailableError

    if isinstance(error, ModelError | CardError | KeyringUnavailableError | ValueError | LookupError):
        return str(error) or type(error).__name__
    return (
        f"Something went wrong ({type(error).__name__}: {error}). "
        "The app is still running; details are in the log."
    )


class ChatView(QWidget):
    settings_requested = Signal(str)
    """Emitted with a settings page name when an error's fix lives there."""
    reload_requested = Signal()
    model_used = Signal(object)
    """A model source answered (or failed: the payload is then the exception)."""
    busy_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatPane")
        self.core: AppCore | None = None
        self.ensure_model: Callable[[], Awaitable[object]] | None = None
        self.character: Character | None = None
        self.chat_id: int | None = None
        self.widgets: list[ChatItem] = []
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._busy = False
        self._stream_widget: MessageWidget | None = None
        self._stream_text = ""
        self._dirty = False
        self._stick_to_bottom = True
        self.flushes = 0
        self._load_seq = 0
        self._earlier: list[Message] = []
        self._governor_banners: list[Banner] = []
        self._waiting_for_chat = False
        self._send_when_open = False
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_INTERVAL_MS)
        self._flush_timer.timeout.connect(self._flush)
        self._build()

    def _build(self) -> None:
        layout = tight(QVBoxLayout(self))

        self.scroll_area = QScrollArea()
        self.scroll_area.setObjectName("MessageScroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.setFrameShape(QScrollArea.Shape.NoFrame)
        container = QWidget()
        self.column = QVBoxLayout(container)
        self.column.setContentsMargins(CHAT_SIDE_MARGIN, 20, CHAT_SIDE_MARGIN, 12)
        self.column.setSpacing(4)
        self.empty_label = QLabel(PICK_HINT)
        self.empty_label.setObjectName("EmptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.column.addWidget(self.empty_label)
        self.earlier_button = push_button("Show earlier messages")
        self.earlier_button.setProperty("role", "ghost")
        self.earlier_button.clicked.connect(self.show_earlier)
        self.earlier_button.hide()
        self.column.addWidget(self.earlier_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.column.addStretch(1)
        self.scroll_area.setWidget(container)
        bar = self.scroll_area.verticalScrollBar()
        bar.rangeChanged.connect(self._follow_bottom)
        bar.valueChanged.connect(self._remember_position)
        layout.addWidget(self.scroll_area, 1)

        bottom = QWidget()
        bottom_layout = self.bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(CHAT_SIDE_MARGIN, 6, CHAT_SIDE_MARGIN, 16)
        bottom_layout.setSpacing(8)
        self.banners = BannerArea()
        self.composer = Composer()
        self.composer.send_requested.connect(self.send)
        self.composer.stop_requested.connect(self.stop)
        self.composer.regenerate_requested.connect(self.regenerate)
        self.composer.set_enabled_for_chat(False)
        bottom_layout.addWidget(self.banners)
        bottom_layout.addWidget(self.composer)
        layout.addWidget(bottom)

    # Binding and loading ------------------------------------------------------------------

    def bind(self, core: AppCore, ensure_model: Callable[[], Awaitable[object]]) -> None:
        self.core = core
        self.ensure_model = ensure_model

    def wait_for_chat(self) -> None:
        """At start-up, before the core is up: take typing now; Send is queued until the chat opens."""
        self._waiting_for_chat = True
        self.empty_label.setText("Loading your chat…")
        self.composer.accept_typing_before_chat()

    def stop_waiting_for_chat(self) -> None:
        """Start-up is over; if no chat opened (no characters, or the core failed), typing waits again.

        What was typed stays in the box; a queued Send is dropped (there is no chat to send it to).
        """
        if self._waiting_for_chat:
            self._waiting_for_chat = False
            self._send_when_open = False
            self.empty_label.setText(PICK_HINT)
            if self.chat_id is None:
                self.composer.set_enabled_for_chat(False)

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def generation_task(self) -> asyncio.Task[None] | None:
        return self._task

    async def open_character(self, character: Character, *, new_chat: bool = False) -> None:
        """Show the character's latest chat (or a fresh one)."""
        assert self.core is not None and character.id is not None
        self._load_seq += 1
        load = self._load_seq
        if self.busy:
            await self.stop_and_wait()
        chat, messages = await (
            self.core.chat.new_chat(character.id) if new_chat else self.core.chat.open_chat(character.id)
        )
        if load != self._load_seq:
            return  # another character was picked while this one loaded
        self.character = character
        self.chat_id = chat.id
        self._show_messages(messages)
        self.composer.set_enabled_for_chat(True)
        self.composer.input.setFocus()
        self._waiting_for_chat = False
        self.empty_label.setText(PICK_HINT)
        if self._send_when_open:
            # Send was pressed while the chat loaded: send what the box holds now, once.
            self._send_when_open = False
            self.composer.hint.hide()
            if self.composer.text.strip():
                self.send(self.composer.text)

    def refresh_names(self) -> None:
        """Show the messages again, e.g. after the user's name changed (it fills {{user}})."""
        if not self.busy and self.character is not None:
            self._show_messages([*self._earlier, *(widget.message for widget in self.widgets)])

    def clear_chat(self) -> None:
        self.character, self.chat_id = None, None
        self._show_messages([])
        self.composer.set_enabled_for_chat(False)

    def _show_messages(self, messages: list[Message]) -> None:
        for widget in self.widgets:
            self.column.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        self.widgets = []
        self.empty_label.setVisible(self.character is None)
        # Long chats open fast: only the newest messages get widgets until more are asked for.
        split = max(0, len(messages) - PAGE_SIZE)
        self._earlier = list(messages[:split])
        for message in messages[split:]:
            self._append(message)
        self._update_earlier_button()
        self._refresh_last()
        self._stick_to_bottom = True

    def show_earlier(self) -> None:
        """Add the previous page of messages above the ones shown."""
        split = max(0, len(self._earlier) - PAGE_SIZE)
        page, self._earlier = self._earlier[split:], self._earlier[:split]
        self._stick_to_bottom = False
        for offset, message in enumerate(page):
            widget = self._make_widget(message)
            self.column.insertWidget(FIRST_MESSAGE_INDEX + offset, widget)
            self.widgets.insert(offset, widget)
        self._update_earlier_button()
        self._refresh_last()

    def _update_earlier_button(self) -> None:
        self.earlier_button.setText(f"Show {min(PAGE_SIZE, len(self._earlier))} earlier messages")
        self.earlier_button.setVisible(bool(self._earlier))

    def _names(self, message: Message) -> tuple[str, bytes | None]:
        if message.role == "user":
            return (self.core.settings.user_name if self.core else "You"), None
        assert self.character is not None
        return self.character.name, self.character.avatar

    def _display(self, text: str) -> str:
        from nexus_desktop.chat.prompt import substitute

        char = self.character.name if self.character else ""
        user = self.core.settings.user_name if self.core else "You"
        return substitute(text, char, user)

    def _make_widget(self, message: Message) -> ChatItem:
        # The message widgets' modules load with the first message, after the window is painted.
        from nexus_desktop.ui.message_widget import MessageWidget

        if message.role == "tool":
            return self._tool_widget(message)
        sender, avatar = self._names(message)
        widget = MessageWidget(message, sender=sender, avatar=avatar, display=self._display)
        widget.set_max_text_width(self._text_width())
        widget.edit_saved.connect(self._edit)
        widget.delete_confirmed.connect(self._delete)
        widget.swipe_requested.connect(self._swipe)
        widget.regenerate_requested.connect(self.regenerate)
        widget.rated.connect(self._rate)
        return widget

    def _tool_widget(self, message: Message) -> ToolCallWidget:
        from nexus_desktop.ui.tool_widget import ToolCallWidget

        widget = ToolCallWidget(message)
        widget.route_judged.connect(self._judge_route)
        return widget

    def _append(self, message: Message) -> ChatItem:
        widget = self._make_widget(message)
        self.column.insertWidget(self.column.count() - 1, widget)
        if self.widgets:
            self.widgets[-1].set_swipeable(False)  # only the last reply can be swiped
        self.widgets.append(widget)
        return widget

    def _refresh_last(self) -> None:
        for widget in self.widgets:
            widget.set_swipeable(False)
        last = self.widgets[-1] if self.widgets else None
        if last is not None and last.role == "assistant" and last.message.id is not None:
            last.set_swipeable(True)
        for widget in self.widgets:
            widget.set_busy(self.busy)

    # Sending, stopping, regenerating ------------------------------------------------------

    def send(self, text: str) -> None:
        if self.chat_id is None and self._waiting_for_chat and text.strip():
            self._send_when_open = True
            self.composer.show_hint(QUEUED_HINT)
            return
        if self.busy or self.chat_id is None:
            return
        if not text.strip():
            self.composer.show_hint("Type a message first — there is nothing to send yet.")
            return
        self._start(self._send(self.chat_id, text))

    def regenerate(self) -> None:
        if self.busy or self.chat_id is None:
            return
        self._start(self._regenerate(self.chat_id))

    def stop(self) -> None:
        self._stop_requested = True
        if self.core is not None:
            self.core.chat.stop()

    async def stop_and_wait(self) -> None:
        self.stop()
        if self._task is not None:
            import asyncio

            await asyncio.wait([self._task])

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        self._stop_requested = False
        self.banners.clear("info")
        shown = self.banners.banners()
        for banner in self._governor_banners:  # the last reply's limits; this one may say its own
            if banner in shown:
                banner.dismiss()
        self._governor_banners = []
        import asyncio

        self._task = asyncio.ensure_future(self._generate(work))
        self._set_busy(True)

    async def _generate(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        finally:
            self._finished()  # inside the task, so the UI is idle again by the time it is done

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.composer.set_busy(busy)
        for widget in self.widgets:
            widget.set_busy(busy)
        self.busy_changed.emit(busy)

    def _finished(self) -> None:
        self._flush_timer.stop()
        self._stream_widget = None
        self._set_busy(False)
        self._refresh_last()

    async def _model_ready(self) -> bool:
        """Load the model first, so a failure leaves the typed text in the box."""
        try:
            if self.ensure_model is not None:
                await self.ensure_model()
        except Exception as error:
            self.show_error(error)
            return False
        return not self._stop_requested

    async def _send(self, chat_id: int, text: str) -> None:
        if not await self._model_ready():
            return
        assert self.core is not None
        await self._consume(self.core.chat.send(chat_id, text), sent_text=text, target=None)

    async def _regenerate(self, chat_id: int) -> None:
        assert self.core is not None
        last = self.widgets[-1] if self.widgets else None
        if last is not None and last.role in ("user", "tool"):
            # The last reply failed or came back empty: write one now.
            if await self._model_ready():
                await self._consume(self.core.chat.respond(chat_id), sent_text=None, target=None)
            return
        from nexus_desktop.ui.message_widget import MessageWidget

        if not isinstance(last, MessageWidget) or last.message.position == 0:
            self.composer.show_hint("There is no reply to regenerate yet; send a message first.")
            return
        if not await self._model_ready():
            return
        await self._consume(self.core.chat.regenerate(chat_id), sent_text=None, target=last)

    async def _consume(
        self, events: AsyncIterator[Any], *, sent_text: str | None, target: MessageWidget | None
    ) -> None:
        from nexus_desktop.chat.events import GovernorNotice
        from nexus_desktop.chat.service import (
            HistoryTrimmed,
            ReplySaved,
            ReplyToken,
            ToolCalled,
            UserMessageSaved,
        )

        saved = False
        self._begin_stream(
            target if target is not None else (None if sent_text is not None else self._placeholder())
        )
        try:
            async for event in events:
                if isinstance(event, UserMessageSaved):
                    if self.composer.text == sent_text:
                        self.composer.clear()
                    self._append(event.message).set_busy(True)
                    self._begin_stream(self._placeholder())
                elif isinstance(event, ReplyToken):
                    self._stream_text += event.text
                    self._dirty = True
                elif isinstance(event, ToolCalled):
                    self._insert_before_stream(self._tool_widget(event.message))
                elif isinstance(event, HistoryTrimmed):
                    self.banners.show_banner("info", event.notice)
                elif isinstance(event, GovernorNotice):
                    self.show_governor_notice(event)
                elif isinstance(event, ReplySaved):
                    saved = True
                    self._flush()
                    if self._stream_widget is not None:
                        self._stream_widget.set_message(event.message)
                    self.model_used.emit(None)
        except Exception as error:
            log.info("Reply failed: %s", error)
            self.show_error(error)
        finally:
            self._end_stream(saved, target)

    def show_governor_notice(self, notice: GovernorNotice) -> None:
        """The character's limits stopped something: say so above the composer, as a warning.

        The reply streamed so far is painted first and stays: a reply cut short by its budget is
        saved as far as it got (``ReplySaved`` follows), and only a reply that never started is
        taken away with its empty placeholder.
        """
        self._flush()
        self._governor_banners.append(self.banners.show_banner("warning", notice.text))

    def _insert_before_stream(self, widget: ChatItem) -> None:
        """A tool result goes between the user's message and the reply being written."""
        stream = self._stream_widget
        index = self.widgets.index(stream) if stream in self.widgets else len(self.widgets)
        self.widgets.insert(index, widget)
        self.column.insertWidget(FIRST_MESSAGE_INDEX + index, widget)
        widget.set_max_text_width(self._text_width())

    def _placeholder(self) -> MessageWidget:
        from nexus_desktop.db.tables import Message
        from nexus_desktop.ui.message_widget import MessageWidget

        assert self.chat_id is not None
        position = (self.widgets[-1].message.position + 1) if self.widgets else 0
        widget = self._append(Message(chat_id=self.chat_id, position=position, role="assistant", swipes=[""]))
        assert isinstance(widget, MessageWidget)
        widget.set_busy(True)
        return widget

    def _begin_stream(self, widget: MessageWidget | None) -> None:
        self._stream_widget = widget
        self._stream_text = ""
        self._dirty = False
        if widget is not None:
            widget.set_streaming_text("")
            self._stick_to_bottom = True
            self._flush_timer.start()

    def _flush(self) -> None:
        if self._dirty and self._stream_widget is not None:
            self._dirty = False
            self.flushes += 1
            self._stream_widget.set_streaming_text(self._stream_text)

    def _end_stream(self, saved: bool, target: MessageWidget | None) -> None:
        self._flush_timer.stop()
        widget = self._stream_widget
        if widget is not None and not saved:
            if target is not None:
                widget.set_message(widget.message)  # the reply failed: show the old alternative again
            else:
                self._remove(widget)
        self._stream_widget = None

    # Editing ------------------------------------------------------------------------------

    def _widget_for(self, message_id: int) -> ChatItem | None:
        return next((w for w in self.widgets if w.message.id == message_id), None)

    def _chat_service(self) -> ChatService:
        assert self.core is not None
        return self.core.chat

    def _change(self, change: Awaitable[Message]) -> None:
        """Save a change to one message off the Qt thread, then show the message as saved."""
        QueryOp(parent=self, op=change, success=self._replace_message).failure(
            self.show_error
        ).run_in_background()

    def _edit(self, message_id: int, text: str) -> None:
        self._change(self._chat_service().edit_message(message_id, text))

    def _swipe(self, message_id: int, index: int) -> None:
        self._change(self._chat_service().show_swipe(message_id, index))

    def _rate(self, message_id: int, thumbs_up: bool) -> None:
        self._change(self._chat_service().rate_message(message_id, thumbs_up))

    def _judge_route(self, message_id: int, right: bool, corrected_label: str) -> None:
        self._change(self._chat_service().judge_route(message_id, right, corrected_label or None))

    def _delete(self, message_id: int) -> None:
        chat = self._chat_service()

        async def delete() -> int:
            await chat.delete_message(message_id)
            return message_id

        def removed(deleted_id: int) -> None:
            widget = self._widget_for(deleted_id)
            if widget is not None:
                self._remove(widget)

        QueryOp(parent=self, op=delete, success=removed).failure(self.show_error).run_in_background()

    def _replace_message(self, message: Message) -> None:
        assert message.id is not None
        widget = self._widget_for(message.id)
        if widget is not None:
            widget.set_message(message)

    def _remove(self, widget: ChatItem) -> None:
        if widget in self.widgets:
            self.widgets.remove(widget)
        # Hidden and deleted by Qt on the UI thread; un-parenting would let Python's garbage
        # collector destroy it later on whatever thread it runs on.
        self.column.removeWidget(widget)
        widget.hide()
        widget.deleteLater()
        self._refresh_last()

    # Errors -------------------------------------------------------------------------------

    def show_error(self, error: BaseException) -> None:
        from nexus_desktop.llm.contract import ModelCrashedError, ModelFileError, RemoteServerError

        action: tuple[str, Callable[[], object]] | None = None
        if isinstance(error, ModelFileError):
            action = ("Model settings", lambda: self.settings_requested.emit("model"))
        elif isinstance(error, RemoteServerError):
            action = ("Server settings", lambda: self.settings_requested.emit("remote"))
        elif isinstance(error, ModelCrashedError):
            action = ("Reload model", self.reload_requested.emit)
        self.banners.show_banner("error", describe_error(error), action)
        from nexus_desktop.llm.contract import ModelError

        if isinstance(error, ModelError):
            self.model_used.emit(error)

    # Layout -------------------------------------------------------------------------------

    def _side_margin(self) -> int:
        """Wide windows keep the conversation in a centred, readable column."""
        return max(CHAT_SIDE_MARGIN, (self.width() - CHAT_MAX_COLUMN_WIDTH) // 2)

    def _text_width(self) -> int:
        column = self.width() - 2 * self._side_margin() - 16
        return max(200, int(column * 0.78) - MESSAGE_AVATAR_SIZE - 40)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        side = self._side_margin()
        self.column.setContentsMargins(side, 20, side, 12)
        self.bottom_layout.setContentsMargins(side, 6, side, 16)
        width = self._text_width()
        for widget in self.widgets:
            widget.set_max_text_width(width)

    def _remember_position(self, value: int) -> None:
        bar = self.scroll_area.verticalScrollBar()
        self._stick_to_bottom = value >= bar.maximum() - 48

    def _follow_bottom(self, _minimum: int, maximum: int) -> None:
        if self._stick_to_bottom:
            self.scroll_area.verticalScrollBar().setValue(maximum)
