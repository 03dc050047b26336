"""The first run asks the user's name, in a panel above the message box.

The chat is open and usable while the panel shows; nothing waits for an answer.  Saving makes the
user's first persona (the default) with that name; Skip makes it with ``suggested_name()``, so the
question is asked once and no character ever greets "You".  The name and the rest of the persona
can be changed later under Manage personas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.widgets import push_button

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Persona
    from nexus_desktop.ui.chat_view import ChatView


class FirstRunPanel(QFrame):
    """ "What should characters call you?" with a name field, Save and Skip."""

    def __init__(self, core: AppCore, suggested: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.suggested = suggested
        self.setObjectName("Banner")
        self.setProperty("kind", "info")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 8, 8, 8)
        outer.setSpacing(4)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.question = QLabel("What should characters call you?")
        self.question.setWordWrap(True)
        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("Your name")
        self.name_edit.setMaxLength(64)
        self.name_edit.setPlaceholderText(suggested)
        self.name_edit.setMinimumWidth(100)
        self.name_edit.returnPressed.connect(self.save)
        self.save_button = push_button("Save", role="primary")
        self.save_button.setToolTip("Characters will call you by this name")
        self.save_button.clicked.connect(self.save)
        self.skip_button = push_button("Skip", role="ghost")
        self.skip_button.setToolTip(f"Be called {suggested} for now; change it under Manage personas")
        self.skip_button.clicked.connect(self.skip)
        row.addWidget(self.question, 1)
        row.addWidget(self.name_edit, 1)
        row.addWidget(self.save_button)
        row.addWidget(self.skip_button)
        outer.addLayout(row)
        self.error = QLabel("")
        self.error.setObjectName("InlineHint")
        self.error.setWordWrap(True)
        self.error.hide()
        outer.addWidget(self.error)

    def save(self) -> None:
        self._name_user(self.name_edit.text().strip() or self.suggested)

    def skip(self) -> None:
        self._name_user(self.suggested)

    def _name_user(self, name: str) -> None:
        self.save_button.setEnabled(False)
        self.skip_button.setEnabled(False)
        # Adding the persona tells the chat (Change("personas")): the greeting then reads the name.
        QueryOp(parent=self, op=self.core.personas.add(name), success=self._done).failure(
            self._failed
        ).run_in_background()

    def _done(self, _persona: Persona) -> None:
        self.hide()
        self.deleteLater()

    def _failed(self, error: BaseException) -> None:
        self.error.setText(str(error))
        self.error.show()
        self.save_button.setEnabled(True)
        self.skip_button.setEnabled(True)


def ask_name_if_new(chat_view: ChatView) -> None:
    """Show the panel above the message box when the user has no persona yet (checked off the Qt
    thread, after the chat screen is up)."""
    core = chat_view.core
    if core is None:
        return

    async def needs_name() -> str | None:
        from nexus_desktop.chat.personas import suggested_name

        return suggested_name() if await core.personas.needs_name() else None

    def show(suggested: str | None) -> None:
        if suggested is None or chat_view.findChild(FirstRunPanel) is not None:
            return
        panel = FirstRunPanel(core, suggested)
        chat_view.bottom_layout.insertWidget(0, panel)  # no focus taken: the user may be typing

    QueryOp(parent=chat_view, op=needs_name, success=show).run_in_background()
