"""The chat: the message list, the banners and the composer, driving ``ChatService``.

Sending and the streaming reply are ``ReplyStreaming``'s part (ui/chat_stream.py); Continue,
Impersonate, the author's note and hiding messages are ``WritingActions``' (ui/chat_writing.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from nexus_desktop.ui.chat_stream import FLUSH_INTERVAL_MS, ReplyStreaming
from nexus_desktop.ui.chat_writing import WritingActions
from nexus_desktop.ui.composer import Composer
from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.lazy_history import OPEN_NEWEST, LazyHistory
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import CHAT_MAX_COLUMN_WIDTH, CHAT_SIDE_MARGIN, MESSAGE_AVATAR_SIZE
from nexus_desktop.ui.widgets import BannerArea, push_button

if TYPE_CHECKING:
    import asyncio

    from nexus_desktop.changes import Change
    from nexus_desktop.chat.groups import Group
    from nexus_desktop.chat.service import ChatService
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Character, Message, Persona
    from nexus_desktop.ui.build_card import BuildCard
    from nexus_desktop.ui.message_widget import MessageWidget
    from nexus_desktop.ui.tool_widget import ToolCallWidget
    from nexus_desktop.ui.widgets import Banner

    ChatItem = MessageWidget | ToolCallWidget | BuildCard

log = logging.getLogger(__name__)

PAGE_SIZE = 60
PICK_HINT = "Pick a character on the left to start chatting."


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


class ChatView(ReplyStreaming, WritingActions, QWidget):
    settings_requested = Signal(str)
    """Emitted with a settings page name when an error's fix lives there."""
    reload_requested = Signal()
    busy_changed = Signal(bool)
    chat_opened = Signal()
    """Another chat is shown (or none): ``character`` and ``group`` say whose."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatPane")
        self.core: AppCore | None = None
        self.ensure_model: Callable[[], Awaitable[object]] | None = None
        self.character: Character | None = None
        self.group: Group | None = None
        """The open chat's group when it is a group chat (``character`` is None then; ui/group_bar.py)."""
        self.persona: Persona | None = None
        """Who the user is in the open chat (its name fills {{user}}); the persona picker keeps it."""
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
        self._chat_banners: list[Banner] = []
        """This chat's notices and errors: they go when another chat opens."""
        self._stale = False
        """The chat changed in the store while a reply ran: show it as stored once it ends."""
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
        self.history = LazyHistory(self)  # earlier messages load as the user scrolls up
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
        from nexus_desktop.ui.persona_dialog import PersonaPicker

        self.persona_picker = PersonaPicker()  # at the message box's left, as the user's avatar
        composer_row = self.composer.frame.layout()
        assert isinstance(composer_row, QBoxLayout)
        composer_row.insertWidget(0, self.persona_picker, 0, Qt.AlignmentFlag.AlignBottom)
        self._add_writing_bar(composer_row)
        bottom_layout.addWidget(self.banners)
        bottom_layout.addWidget(self.composer)
        layout.addWidget(bottom)

    # Binding and loading ------------------------------------------------------------------

    def bind(self, core: AppCore, ensure_model: Callable[[], Awaitable[object]]) -> None:
        self.core = core
        self.ensure_model = ensure_model
        self.persona_picker.bind(core, self)
        core.changes.subscribe(self._changed)

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

    async def open_character(
        self, character: Character, *, new_chat: bool = False, chat_id: int | None = None
    ) -> None:
        """Show the character's latest chat (or a fresh one, or the chat ``chat_id``)."""
        assert self.core is not None and character.id is not None
        self._load_seq += 1
        load = self._load_seq
        if self.busy:
            await self.stop_and_wait()
        if chat_id is not None:
            chat, messages = await self.core.history.open(chat_id)
        else:
            chat, messages = await (
                self.core.chat.new_chat(character.id)
                if new_chat
                else self.core.chat.open_chat(character.id, newest=OPEN_NEWEST)
            )
        assert chat.id is not None
        persona = await self.core.personas.for_chat(chat.id)
        if load != self._load_seq:
            return  # another character was picked while this one loaded
        self.show_chat(chat.id, messages, persona, character=character)

    def show_chat(
        self,
        chat_id: int,
        messages: list[Message],
        persona: Persona,
        *,
        character: Character | None = None,
        group: Group | None = None,
    ) -> None:
        """Show this chat, with ``character`` or of ``group``, as the user ``persona``."""
        if chat_id != self.chat_id:
            self._forget_chat_banners()
        self.character, self.group = character, group
        self.chat_id = chat_id
        self.persona = persona
        self.persona_picker.show_persona(persona)
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
        self.chat_opened.emit()

    def refresh_names(self) -> None:
        """Show the messages again, e.g. after the user's name changed (it fills {{user}})."""
        if not self.busy and (self.character is not None or self.group is not None):
            self._show_messages([*self._earlier, *(w.message for w in self.widgets), *self.history.later])

    def clear_chat(self) -> None:
        self._forget_chat_banners()
        self.character, self.group, self.chat_id = None, None, None
        self._show_messages([])
        self.composer.set_enabled_for_chat(False)
        self.chat_opened.emit()

    # Following the store ------------------------------------------------------------------

    def _changed(self, change: Change) -> None:
        """Messages of the open chat changed (here, or in another process such as the CLI)."""
        if change.kind != "messages" or self.chat_id is None or change.chat_id not in (None, self.chat_id):
            return
        if self.busy:
            self._stale = True  # the stream owns the list until it ends
            return
        self.show_stored_messages_soon()

    def show_stored_messages_soon(self) -> None:
        QueryOp(parent=self, op=self.show_stored_messages()).failure(
            lambda error: log.warning("Could not show the chat as stored: %s", error)
        ).run_in_background()

    async def show_stored_messages(self) -> None:
        """Show the open chat as it is stored: new messages are added below, anything else
        redraws the list; nothing happens when what is shown is already what is stored."""
        assert self.core is not None
        self._stale = False
        chat_id = self.chat_id
        if chat_id is None:
            return
        stored = await self.core.db.call(self.core.store.list_messages, chat_id)
        if chat_id != self.chat_id or self.busy:
            self._stale = self.busy
            return
        shown = [*self._earlier, *(widget.message for widget in self.widgets), *self.history.later]
        if len(stored) >= len(shown) and list(map(_looks, shown)) == list(map(_looks, stored[: len(shown)])):
            if len(stored) > len(shown):
                self.history.show_newest()  # new messages go below the newest
            for message in stored[len(shown) :]:
                self._append(message)
            self._refresh_last()
        else:
            self._show_messages(stored)

    def _forget_chat_banners(self) -> None:
        shown = self.banners.banners()
        for banner in [*self._chat_banners, *self._governor_banners]:
            if banner in shown:
                banner.dismiss()
        self._chat_banners, self._governor_banners = [], []

    def _show_messages(self, messages: list[Message]) -> None:
        for widget in self.widgets:
            self.column.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        self.widgets = []
        self.empty_label.setVisible(self.character is None and self.group is None)
        # Long chats open fast: only the newest messages get widgets until more are asked for.
        split = max(0, len(messages) - PAGE_SIZE)
        self._earlier = list(messages[:split])
        for message in messages[split:]:
            self._append(message)
        self._update_earlier_button()
        self._refresh_last()
        self._stick_to_bottom = True
        self.history.shown(messages)

    def show_earlier(self) -> None:
        """Add the previous page of messages above the ones shown, a few per event-loop turn (as
        scrolling up does), so a page never stalls the window."""
        self.history.load_earlier(PAGE_SIZE)

    def _update_earlier_button(self) -> None:
        self.earlier_button.setText(f"Show {min(PAGE_SIZE, len(self._earlier))} earlier messages")
        self.earlier_button.setVisible(bool(self._earlier))

    def _names(self, message: Message) -> tuple[str, bytes | None]:
        if message.role == "user":
            return (self.persona.name, self.persona.avatar) if self.persona else ("User", None)
        if self.group is not None:
            from nexus_desktop.ui.group_bar import speaker_of

            return speaker_of(self.group, message)
        assert self.character is not None
        return self.character.name, self.character.avatar

    def _display(self, text: str) -> str:
        from nexus_desktop.chat.prompt import substitute

        char = self.character.name if self.character else ""
        user = self.persona.name if self.persona else "User"
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
        widget.branch_requested.connect(self._branch)
        widget.hidden_toggled.connect(self._toggle_hidden)
        return widget

    def _tool_widget(self, message: Message) -> ToolCallWidget | BuildCard:
        from nexus_desktop.ui.build_card import BuildCard, build_id_of
        from nexus_desktop.ui.tool_widget import ToolCallWidget

        build_id = build_id_of(message)
        if build_id is not None and self.core is not None:  # a module build: its live card
            card = BuildCard(self.core, build_id, message)
            card.set_max_text_width(self._text_width())
            return card
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
        last = self.widgets[-1] if self.widgets and not self.history.later else None
        if last is not None and last.role == "assistant" and last.message.id is not None:
            last.set_swipeable(True)
        for widget in self.widgets:
            widget.set_busy(self.busy)

    # Editing ------------------------------------------------------------------------------

    def _widget_for(self, message_id: int) -> ChatItem | None:
        return next((w for w in self.widgets if w.message.id == message_id), None)

    def _chat_service(self) -> ChatService:
        assert self.core is not None
        return self.core.chat

    def _change(self, change: Awaitable[Message]) -> None:
        """Save a change to one message off the Qt thread, then show the message as saved."""
        QueryOp(parent=self, op=change, success=self._replace_message).failure(
            self.show_chat_error
        ).run_in_background()

    def _edit(self, message_id: int, text: str) -> None:
        self._change(self._chat_service().edit_message(message_id, text))

    def _swipe(self, message_id: int, index: int) -> None:
        self._change(self._chat_service().show_swipe(message_id, index))

    def _branch(self, message_id: int) -> None:
        from nexus_desktop.ui.chat_list import branch_from_message

        branch_from_message(self, message_id)

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

        QueryOp(parent=self, op=delete, success=removed).failure(self.show_chat_error).run_in_background()

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

    def show_error(self, error: BaseException) -> Banner:
        from nexus_desktop.llm.contract import ModelCrashedError, ModelFileError, RemoteServerError

        action: tuple[str, Callable[[], object]] | None = None
        if isinstance(error, ModelFileError):
            action = ("Model settings", lambda: self.settings_requested.emit("model"))
        elif isinstance(error, RemoteServerError):
            action = ("Server settings", lambda: self.settings_requested.emit("remote"))
        elif isinstance(error, ModelCrashedError):
            action = ("Reload model", self.reload_requested.emit)
        return self.banners.show_banner("error", describe_error(error), action)

    def show_chat_error(self, error: BaseException) -> None:
        """An error of the open chat (a refused send, a failed reply or edit): it goes when
        another chat opens."""
        self._chat_banners.append(self.show_error(error))

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


def _looks(message: Message) -> tuple[object, ...]:
    """What a message widget shows of ``message``: the same tuple, the same widget."""
    return message.id, message.role, message.swipe_index, message.swipes, message.swipe_stats, message.hidden
