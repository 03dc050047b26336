"""Personas in the window: the open chat's picker beside the message box, and the manager dialog.

Both read and write through ``core.personas`` (``chat/personas.py``) off the Qt thread, and both
refresh on ``Change("personas")``, whoever made the change.  The picker also keeps the chat view's
``persona`` current, so the user's messages show the persona's name and avatar and {{user}} reads
its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, Signal, SignalInstance
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.widgets import Avatar, BannerArea, push_button, round_avatar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nexus_desktop.changes import Change
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Persona
    from nexus_desktop.ui.chat_view import ChatView

PICKER_SIZE = 40
PICKER_ICON = 28


def subscribe_to_personas(widget: QWidget, core: AppCore, changed: SignalInstance) -> None:
    """Emit ``changed`` (a signal of ``widget``) on every ``Change("personas")`` until ``widget`` goes.

    A signal, not a direct call: it reaches the widget on the Qt thread whoever emitted the change.
    """

    def heard(change: Change) -> None:
        if change.kind == "personas":
            changed.emit()

    unsubscribe = core.changes.subscribe(heard)
    widget.destroyed.connect(lambda *_: unsubscribe())


class PersonaPicker(QToolButton):
    """Who the user is in the open chat: their persona's avatar; click to speak as another."""

    _personas_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PersonaPicker")
        self.setProperty("role", "ghost")
        self.setFixedSize(PICKER_SIZE, PICKER_SIZE)
        self.setIconSize(QSize(PICKER_ICON, PICKER_ICON))
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setAccessibleName("Persona")
        self.setStyleSheet("QToolButton::menu-indicator { image: none; width: 0; }")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu_ = QMenu(self)
        self.menu_.aboutToShow.connect(self._menu_opening)
        self.setMenu(self.menu_)
        self.core: AppCore | None = None
        self.chat_view: ChatView | None = None
        self.personas: list[Persona] = []
        self.persona: Persona | None = None
        self._personas_changed.connect(self.reload)
        self.setEnabled(False)
        self._paint(None)

    def bind(self, core: AppCore, chat_view: ChatView) -> None:
        self.core, self.chat_view = core, chat_view
        subscribe_to_personas(self, core, self._personas_changed)
        self.reload()

    def show_persona(self, persona: Persona) -> None:
        """A chat opened (or its persona changed): show who the user is in it."""
        self.persona = persona
        self.setEnabled(True)
        self._paint(persona)

    def reload(self) -> None:
        """Read the personas and the open chat's persona again, and show messages with it."""
        core, view = self.core, self.chat_view
        if core is None or view is None:
            return
        chat_id = view.chat_id

        async def load() -> tuple[list[Persona], Persona | None]:
            persona = await core.personas.for_chat(chat_id) if chat_id is not None else None
            return await core.personas.list(), persona

        def loaded(result: tuple[list[Persona], Persona | None]) -> None:
            self.personas, persona = result
            if self.menu_.isVisible():
                self._fill_menu()
            if persona is not None and view.chat_id == chat_id:
                shown = view.persona
                view.persona = persona
                if shown is None or (shown.name, shown.avatar) != (persona.name, persona.avatar):
                    view.refresh_names()
                self.show_persona(persona)

        QueryOp(parent=self, op=load, success=loaded).failure(view.show_error).run_in_background()

    def choose(self, persona_id: int) -> None:
        """Speak as this persona in the open chat from now on."""
        core, view = self.core, self.chat_view
        if core is None or view is None or view.chat_id is None:
            return
        QueryOp(parent=self, op=core.personas.use_in_chat(view.chat_id, persona_id)).failure(
            view.show_error
        ).run_in_background()  # the change event redraws the chat with it

    def open_manager(self) -> PersonaDialog | None:
        if self.core is None:
            return None
        dialog = PersonaDialog(self.core, self.window())
        dialog.open()
        return dialog

    def _paint(self, persona: Persona | None) -> None:
        name = persona.name if persona is not None else "?"
        self.setIcon(QIcon(round_avatar(persona.avatar if persona else None, name, PICKER_ICON)))
        if persona is None:
            self.setToolTip("Your persona: who you are in this chat")
        else:
            self.setToolTip(f"You are {persona.name} in this chat. Click to speak as another persona.")

    def _menu_opening(self) -> None:
        self._fill_menu()
        self.reload()  # personas another process added (``nexus personas add``) join while it is open

    def _fill_menu(self) -> None:
        self.menu_.clear()
        current = self.persona.id if self.persona is not None else None
        for persona in self.personas:
            label = f"{persona.name} (default)" if persona.is_default else persona.name
            action = self.menu_.addAction(QIcon(round_avatar(persona.avatar, persona.name, 20)), label)
            action.setCheckable(True)
            action.setChecked(persona.id == current)
            if persona.id == current:  # the icon takes the check mark's place: bold says it instead
                font = action.font()
                font.setBold(True)
                action.setFont(font)
            if persona.id is not None:
                action.triggered.connect(lambda _c=False, pid=persona.id: self.choose(pid))
        if self.personas:
            self.menu_.addSeparator()
        self.menu_.addAction("Manage personas…", self.open_manager)


class PersonaDialog(QDialog):
    """Create, edit, delete personas and pick the default.  Non-blocking (``open()``)."""

    _personas_changed = Signal()

    def __init__(self, core: AppCore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.personas: list[Persona] = []
        self.avatar_png: bytes | None = None
        self.setWindowTitle("Personas")
        self.resize(720, 460)
        self._build()
        self._personas_changed.connect(self.reload)
        subscribe_to_personas(self, core, self._personas_changed)
        self.reload()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(10)
        title = QLabel("Personas")
        title.setObjectName("DialogTitle")
        layout.addWidget(title)
        hint = QLabel(
            "Who you are in chats: the name fills {{user}}, and the description tells the character "
            "about you."
        )
        hint.setObjectName("FieldHelp")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.banners = BannerArea()
        layout.addWidget(self.banners)

        body = QHBoxLayout()
        body.setSpacing(16)
        left = QVBoxLayout()
        self.list = QListWidget()
        self.list.setAccessibleName("Personas")
        self.list.setIconSize(QSize(24, 24))
        self.list.setMinimumWidth(150)
        self.list.currentRowChanged.connect(self._show_row)
        left.addWidget(self.list, 1)
        self.new_button = push_button("New persona", icon_name="plus")
        self.new_button.setToolTip("Start a new persona")
        self.new_button.clicked.connect(self.start_new)
        left.addWidget(self.new_button)
        body.addLayout(left, 1)
        body.addLayout(self._form(), 2)
        layout.addLayout(body, 1)

        buttons = QHBoxLayout()
        self.delete_button = push_button("Delete", role="danger")
        self.delete_button.setToolTip("Delete this persona; its chats use the default persona")
        self.delete_button.clicked.connect(self.ask_delete)
        self.default_button = push_button("Make default")
        self.default_button.setToolTip("New chats, and chats that never picked a persona, use this one")
        self.default_button.clicked.connect(self.make_default)
        close = push_button("Close")
        close.clicked.connect(self.accept)
        self.save_button = push_button("Save", role="primary")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.default_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)

    def _form(self) -> QVBoxLayout:
        form = QVBoxLayout()
        form.setSpacing(6)
        top = QHBoxLayout()
        self.avatar = Avatar(72)
        top.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignTop)
        picture = QVBoxLayout()
        self.avatar_button = push_button("Choose image…", icon_name="image")
        self.avatar_button.setToolTip("Pick a picture for this persona")
        self.avatar_button.clicked.connect(self._choose_avatar)
        self.remove_avatar_button = push_button("Remove image")
        self.remove_avatar_button.clicked.connect(lambda: self._set_avatar(None))
        picture.addWidget(self.avatar_button)
        picture.addWidget(self.remove_avatar_button)
        picture.addStretch(1)
        top.addLayout(picture)
        top.addStretch(1)
        form.addLayout(top)
        form.addWidget(QLabel("Name"))
        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("Persona name")
        self.name_edit.setMaxLength(64)
        self.name_edit.setPlaceholderText("What characters call you")
        self.name_edit.textChanged.connect(lambda _t: self._refresh_avatar())
        form.addWidget(self.name_edit)
        form.addWidget(QLabel("Description"))
        self.description_edit = QPlainTextEdit()
        self.description_edit.setAccessibleName("Persona description")
        self.description_edit.setPlaceholderText("e.g. {{user}} is a retired pilot who hates small talk.")
        form.addWidget(self.description_edit, 1)
        return form

    # Showing ---------------------------------------------------------------------------------

    def reload(self, select_id: int | None = None) -> None:
        keep = select_id if select_id is not None else self._selected_id()

        def show(personas: list[Persona]) -> None:
            self.personas = personas
            self.list.blockSignals(True)
            self.list.clear()
            for persona in personas:
                label = f"{persona.name} (default)" if persona.is_default else persona.name
                item = QListWidgetItem(QIcon(round_avatar(persona.avatar, persona.name, 24)), label)
                self.list.addItem(item)
            self.list.blockSignals(False)
            ids = [p.id for p in personas]
            if keep in ids:
                self.list.setCurrentRow(ids.index(keep))
            elif personas and keep is None and self.name_edit.text() == "":
                self.list.setCurrentRow(0)
            else:
                self._show_row(self.list.currentRow())

        self._run(self.core.personas.list(), show)

    def _selected_id(self) -> int | None:
        row = self.list.currentRow()
        return self.personas[row].id if 0 <= row < len(self.personas) else None

    def _show_row(self, row: int) -> None:
        persona = self.personas[row] if 0 <= row < len(self.personas) else None
        if persona is not None:
            self.name_edit.setText(persona.name)
            self.description_edit.setPlainText(persona.description)
            self._set_avatar(persona.avatar)
        self.delete_button.setEnabled(persona is not None)  # the default's refusal says what to do
        self.default_button.setEnabled(persona is not None and not persona.is_default)

    def start_new(self) -> None:
        self.list.setCurrentRow(-1)
        self.name_edit.clear()
        self.description_edit.clear()
        self._set_avatar(None)
        self.name_edit.setFocus()

    # Changes ---------------------------------------------------------------------------------

    def save(self) -> None:
        persona_id = self._selected_id()
        name, description = self.name_edit.text(), self.description_edit.toPlainText()
        personas = self.core.personas
        if persona_id is None:
            work = personas.add(name, description, self.avatar_png)
        else:
            work = personas.update(persona_id, name, description, self.avatar_png)
        self.banners.clear()
        self._run(work, lambda saved: self.reload(select_id=saved.id))

    def make_default(self) -> None:
        persona_id = self._selected_id()
        if persona_id is not None:
            self._run(self.core.personas.set_default(persona_id), lambda saved: self.reload(saved.id))

    def ask_delete(self) -> QMessageBox | None:
        row = self.list.currentRow()
        persona = self.personas[row] if 0 <= row < len(self.personas) else None
        if persona is None or persona.id is None:
            return None
        if persona.is_default:
            self.delete(persona.id, persona.name)  # refused, with the way out: nothing to confirm
            return None
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete persona",
            f"Delete {persona.name}? Chats that use it will use your default persona instead.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)

        def answered(_result: int) -> None:
            if box.clickedButton() is delete and persona.id is not None:
                self.delete(persona.id, persona.name)

        box.finished.connect(answered)
        box.open()
        return box

    def delete(self, persona_id: int, name: str) -> None:
        def deleted(moved: int) -> None:
            if moved:
                chats = "chat now uses" if moved == 1 else "chats now use"
                self.banners.show_banner("info", f"Deleted {name}; {moved} {chats} your default persona.")
            self.start_new()
            self.reload()

        self._run(self.core.personas.delete(persona_id), deleted)

    # Avatar ----------------------------------------------------------------------------------

    def _choose_avatar(self) -> None:
        from nexus_desktop.ui.character_editor import IMAGE_FILTER

        path, _ = QFileDialog.getOpenFileName(self, "Choose a picture", "", IMAGE_FILTER)
        if path:
            self.load_avatar(Path(path))

    def load_avatar(self, path: Path) -> None:
        """Read an image file off the Qt thread; a file that is not an image says so and changes nothing."""
        from nexus_desktop.ui.character_editor import read_avatar

        QueryOp(parent=self, op=lambda: read_avatar(path), success=self._set_avatar).failure(
            self.show_error
        ).run_in_background()

    def _set_avatar(self, avatar: bytes | None) -> None:
        self.avatar_png = avatar
        self.remove_avatar_button.setEnabled(avatar is not None)
        self._refresh_avatar()

    def _refresh_avatar(self) -> None:
        self.avatar.set_avatar(self.avatar_png, self.name_edit.text().strip() or "?")

    def show_error(self, error: BaseException) -> None:
        from nexus_desktop.ui.chat_view import describe_error

        self.banners.show_banner("error", describe_error(error))

    def _run(self, work: Awaitable[Any], success: Callable[[Any], object]) -> None:
        QueryOp(parent=self, op=work, success=success).failure(self.show_error).run_in_background()
