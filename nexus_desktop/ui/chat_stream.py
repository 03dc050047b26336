"""Sending, stopping and regenerating in the chat, and painting the reply as it streams.

``ChatView`` mixes this in.  Replies stream in through ``ChatService.send()`` /
``regenerate()`` on the qasync loop.  Tokens are collected in a buffer and painted by a timer at
most ~30 times a second, so a fast model never floods the UI thread with relayouts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from PySide6.QtCore import QTimer, SignalInstance
    from PySide6.QtWidgets import QVBoxLayout

    from nexus_desktop.chat.events import GovernorNotice, SpeakerChosen
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Message
    from nexus_desktop.ui.build_card import BuildCard
    from nexus_desktop.ui.composer import Composer
    from nexus_desktop.ui.lazy_history import LazyHistory
    from nexus_desktop.ui.message_widget import MessageWidget
    from nexus_desktop.ui.tool_widget import ToolCallWidget
    from nexus_desktop.ui.widgets import Banner, BannerArea

    ChatItem = MessageWidget | ToolCallWidget | BuildCard

log = logging.getLogger(__name__)

FLUSH_INTERVAL_MS = 33
FIRST_MESSAGE_INDEX = 2  # in the column: the empty-state label, the "earlier" button, then messages
QUEUED_HINT = "Loading your chat… your message will be sent as soon as it opens."


class ReplyStreaming:
    """The reply half of ``ChatView``: what it declares here, ``ChatView`` provides."""

    core: AppCore | None
    chat_id: int | None
    widgets: list[ChatItem]
    composer: Composer
    banners: BannerArea
    busy_changed: SignalInstance
    ensure_model: Callable[[], Awaitable[object]] | None
    flushes: int
    _task: asyncio.Task[None] | None
    _stop_requested: bool
    _busy: bool
    _stream_widget: MessageWidget | None
    _stream_text: str
    _dirty: bool
    _stick_to_bottom: bool
    _governor_banners: list[Banner]
    _chat_banners: list[Banner]
    _stale: bool
    _waiting_for_chat: bool
    _send_when_open: bool
    _flush_timer: QTimer
    history: LazyHistory

    column: QVBoxLayout

    if TYPE_CHECKING:

        def _append(self, message: Message) -> ChatItem: ...
        def _tool_widget(self, message: Message) -> ToolCallWidget | BuildCard: ...
        def _remove(self, widget: ChatItem) -> None: ...
        def _refresh_last(self) -> None: ...
        def _text_width(self) -> int: ...
        def show_error(self, error: BaseException) -> Banner: ...
        def show_chat_error(self, error: BaseException) -> None: ...
        def show_stored_messages_soon(self) -> None: ...

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def generation_task(self) -> asyncio.Task[None] | None:
        return self._task

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
        self.history.show_newest()  # the reply goes below the chat's newest message
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
        if self._stale:  # another process wrote to this chat while the reply ran
            self.show_stored_messages_soon()

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

        if not isinstance(last, MessageWidget) or last.message.is_greeting:
            self.composer.show_hint("There is no reply to regenerate yet; send a message first.")
            return
        if not await self._model_ready():
            return
        await self._consume(self.core.chat.regenerate(chat_id), sent_text=None, target=last)

    async def _consume(
        self,
        events: AsyncIterator[Any],
        *,
        sent_text: str | None,
        target: MessageWidget | None,
        continuing: bool = False,
    ) -> None:
        """Show a reply as it streams: into a new bubble, or into ``target``'s as another
        alternative of it, or (``continuing``) as more of the text it shows."""
        from nexus_desktop.chat.events import BuildStarted, GovernorNotice, SpeakerChosen
        from nexus_desktop.chat.service import (
            HistoryTrimmed,
            ReplySaved,
            ReplyToken,
            ToolCalled,
            UserMessageSaved,
        )

        saved = False
        if target is not None and not continuing:
            target.start_alternative()  # the swipe counter shows the one being written (3/3)
        self._begin_stream(
            target if target is not None else (None if sent_text is not None else self._placeholder()),
            target.message.content if continuing and target is not None else "",
        )
        try:
            async for event in events:
                if isinstance(event, UserMessageSaved):
                    if self.composer.text == sent_text:
                        self.composer.clear()
                    self._append(event.message).set_busy(True)
                    self._begin_stream(self._placeholder())
                elif isinstance(event, SpeakerChosen) and target is None:
                    # A group's next reply: a bubble of its own, under its writer's name.
                    if self._stream_widget is not None and not saved:
                        self._remove(self._stream_widget)
                    self._begin_stream(self._placeholder(event))
                    saved = False
                elif isinstance(event, ReplyToken):
                    self._stream_text += event.text
                    self._dirty = True
                elif isinstance(event, ToolCalled | BuildStarted):  # a build shows as its card
                    self._insert_before_stream(self._tool_widget(event.message))
                elif isinstance(event, HistoryTrimmed):
                    self._chat_banners.append(self.banners.show_banner("info", event.notice))
                elif isinstance(event, GovernorNotice):
                    self.show_governor_notice(event)
                elif isinstance(event, ReplySaved):
                    saved = True
                    self._flush()
                    if self._stream_widget is not None:
                        self._stream_widget.set_message(event.message)
        except Exception as error:
            log.info("Reply failed: %s", error)
            self.show_chat_error(error)
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

    def _placeholder(self, speaker: SpeakerChosen | None = None) -> MessageWidget:
        from nexus_desktop.db.tables import Message
        from nexus_desktop.ui.message_widget import MessageWidget

        assert self.chat_id is not None
        position = (self.widgets[-1].message.position + 1) if self.widgets else 0
        placeholder = Message(chat_id=self.chat_id, position=position, role="assistant", swipes=[""])
        if speaker is not None:  # a group's reply: its writer's name and avatar while it streams
            placeholder.speaker_id, placeholder.speaker_name = speaker.character_id, speaker.name
        widget = self._append(placeholder)
        assert isinstance(widget, MessageWidget)
        widget.set_busy(True)
        return widget

    def _begin_stream(self, widget: MessageWidget | None, text: str = "") -> None:
        """Stream into ``widget``, after ``text`` (a continued reply's)."""
        self._stream_widget = widget
        self._stream_text = text
        self._dirty = False
        if widget is not None:
            widget.set_streaming_text(text)
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
