"""The writing tools in the chat (``chat/writing.py``): Continue, Impersonate, the author's note
and hiding a message from the prompt.

``ChatView`` mixes this in.  Continue streams into the last reply's bubble through the reply
stream (``ReplyStreaming._consume``); Impersonate streams into the message box, which stays
read-only until it is done, and leaves the text there to edit and send (Ctrl+Z gives back what
the box held before).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtWidgets import QBoxLayout, QWidget

    from nexus_desktop.chat.events import GovernorNotice
    from nexus_desktop.chat.service import ChatService
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Chat, Message, Persona
    from nexus_desktop.ui.author_note_dialog import AuthorNoteDialog
    from nexus_desktop.ui.build_card import BuildCard
    from nexus_desktop.ui.composer import Composer
    from nexus_desktop.ui.lazy_history import LazyHistory
    from nexus_desktop.ui.message_widget import MessageWidget
    from nexus_desktop.ui.tool_widget import ToolCallWidget
    from nexus_desktop.ui.widgets import Banner, BannerArea
    from nexus_desktop.ui.writing_bar import WritingBar

    ChatItem = MessageWidget | ToolCallWidget | BuildCard

log = logging.getLogger(__name__)

NOTE_SAVED = "Author's note saved: the next reply's prompt carries it."
NOTE_REMOVED = "Author's note removed."


class WritingActions:
    """The writing tools' half of ``ChatView``: what it declares here, ``ChatView`` provides."""

    core: AppCore | None
    chat_id: int | None
    persona: Persona | None
    widgets: list[ChatItem]
    composer: Composer
    banners: BannerArea
    writing_bar: WritingBar
    history: LazyHistory
    note_dialog: AuthorNoteDialog | None
    _chat_banners: list[Banner]
    busy_changed: SignalInstance
    chat_opened: SignalInstance

    if TYPE_CHECKING:

        @property
        def busy(self) -> bool: ...
        def _start(self, work: Coroutine[Any, Any, None]) -> None: ...
        async def _model_ready(self) -> bool: ...
        async def _consume(
            self,
            events: Any,
            *,
            sent_text: str | None,
            target: MessageWidget | None,
            continuing: bool = False,
        ) -> None: ...
        def _chat_service(self) -> ChatService: ...
        def _change(self, change: Awaitable[Message]) -> None: ...
        def show_chat_error(self, error: BaseException) -> None: ...
        def show_governor_notice(self, notice: GovernorNotice) -> None: ...

    def _add_writing_bar(self, composer_row: QBoxLayout) -> None:
        """The writing tools go in the message box's row, before Regenerate."""
        from PySide6.QtCore import Qt

        from nexus_desktop.ui.writing_bar import WritingBar

        self.note_dialog = None
        bar = self.writing_bar = WritingBar()
        place = composer_row.indexOf(self.composer.regenerate_button)
        composer_row.insertWidget(place, bar, 0, Qt.AlignmentFlag.AlignBottom)
        bar.continue_requested.connect(self.continue_reply)
        bar.impersonate_requested.connect(self.impersonate)
        bar.note_requested.connect(self.edit_author_note)
        bar.set_available(False)
        self.busy_changed.connect(lambda _busy: self._update_writing_bar())
        self.chat_opened.connect(self._writing_chat_opened)

    def _update_writing_bar(self) -> None:
        self.writing_bar.set_available(self.chat_id is not None and not self.busy)

    def _writing_chat_opened(self) -> None:
        """Another chat is shown: say whether it has an author's note (read off the Qt thread)."""
        from nexus_desktop.ui.ops import QueryOp

        self._update_writing_bar()
        self.writing_bar.show_note("")
        if self.chat_id is None or self.core is None:
            return
        core = self.core

        def show(chat: Chat) -> None:
            if chat.id == self.chat_id:
                self.writing_bar.show_note(chat.author_note)

        QueryOp(
            parent=self._as_widget(), op=core.db.call(core.store.get_chat, self.chat_id), success=show
        ).failure(
            lambda error: log.warning("Could not read the chat's author's note: %s", error)
        ).run_in_background()

    # Continue ----------------------------------------------------------------------------

    def continue_reply(self) -> None:
        """Write more of the last reply, into its bubble; says what to do when there is none."""
        if self.busy or self.chat_id is None:
            return
        from nexus_desktop.chat.writing import NothingToContinueError, reply_to_continue
        from nexus_desktop.ui.message_widget import MessageWidget

        self.history.show_newest()  # the reply to continue is the chat's newest message
        try:
            reply_to_continue([widget.message for widget in self.widgets])
        except NothingToContinueError as error:
            self.composer.show_hint(str(error))
            return
        target = self.widgets[-1]
        assert isinstance(target, MessageWidget)
        self._start(self._continue(self.chat_id, target))

    async def _continue(self, chat_id: int, target: MessageWidget) -> None:
        if not await self._model_ready():
            return
        assert self.core is not None
        events = self.core.chat.continue_reply(chat_id)
        await self._consume(events, sent_text=None, target=target, continuing=True)

    # Impersonate -------------------------------------------------------------------------

    def impersonate(self) -> None:
        """Write the user's next message in their persona's voice, into the message box."""
        if self.busy or self.chat_id is None:
            return
        typed = self.composer.text
        self.composer.input.setReadOnly(True)  # from the start: what is typed now would be written over
        self._start(self._impersonate(self.chat_id, typed))

    async def _impersonate(self, chat_id: int, typed: str) -> None:
        """Stream the text into the message box; at the end leave it there in place of ``typed``
        (what the box held), or give ``typed`` back when nothing came."""
        from nexus_desktop.chat.events import GovernorNotice, HistoryTrimmed, Impersonated, ReplyToken
        from nexus_desktop.chat.model_output import streamed_reply
        from nexus_desktop.ui.author_note_dialog import replace_text

        box = self.composer.input
        name = self.persona.name if self.persona is not None else ""
        written, result = "", None
        try:
            if not await self._model_ready():
                return
            assert self.core is not None
            async for event in self.core.chat.impersonate(chat_id):
                if isinstance(event, ReplyToken):
                    written += event.text
                    box.setPlainText(streamed_reply(written, name))
                elif isinstance(event, Impersonated):
                    result = event.text
                elif isinstance(event, HistoryTrimmed):
                    self._chat_banners.append(self.banners.show_banner("info", event.notice))
                elif isinstance(event, GovernorNotice):
                    self.show_governor_notice(event)
        except Exception as error:
            log.info("Impersonation failed: %s", error)
            self.show_chat_error(error)
        finally:
            box.setReadOnly(False)
            box.setPlainText(typed)  # what the box held; the result replaces it as one undo step
            if result:
                replace_text(box, result)
            box.setFocus()

    # The author's note -------------------------------------------------------------------

    def edit_author_note(self) -> None:
        """Open the open chat's author's note (read from the store first)."""
        if self.chat_id is None or self.core is None:
            return
        core = self.core
        from nexus_desktop.ui.ops import QueryOp

        QueryOp(
            parent=self._as_widget(),
            op=core.db.call(core.store.get_chat, self.chat_id),
            success=self._show_note,
        ).failure(self.show_chat_error).run_in_background()

    def _show_note(self, chat: Chat) -> None:
        from nexus_desktop.ui.author_note_dialog import AuthorNoteDialog

        assert chat.id is not None
        chat_id = chat.id
        dialog = AuthorNoteDialog(
            chat.author_note, chat.author_note_depth, chat.author_note_role, self._as_widget()
        )
        dialog.accepted.connect(lambda: self._save_note(chat_id, *dialog.note))
        self.note_dialog = dialog
        dialog.open()

    def _save_note(self, chat_id: int, text: str, depth: int, role: str) -> None:
        from nexus_desktop.ui.ops import QueryOp

        saving = self._chat_service().set_author_note(chat_id, text, depth, role)
        QueryOp(parent=self._as_widget(), op=saving, success=self._note_saved).failure(
            self.show_chat_error
        ).run_in_background()

    def _note_saved(self, chat: Chat) -> None:
        if chat.id != self.chat_id:
            return
        self.writing_bar.show_note(chat.author_note)
        self.composer.show_hint(NOTE_SAVED if chat.author_note else NOTE_REMOVED)

    # Hide from context -------------------------------------------------------------------

    def _toggle_hidden(self, message_id: int, hidden: bool) -> None:
        self._change(self._chat_service().set_hidden(message_id, hidden))

    def _as_widget(self) -> QWidget:
        from PySide6.QtWidgets import QWidget

        assert isinstance(self, QWidget)
        return self
