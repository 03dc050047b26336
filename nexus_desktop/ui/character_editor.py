"""Create or edit a character: persona, greetings, examples, prompts, lorebook; import and export cards.

The dialog is non-blocking (``open()``).  Saving emits ``saved(card, avatar_png)``; storing the
character is the caller's job, and so is storing ``chosen_policy`` (the Limits page's policy, or
None to leave the stored one alone: it was never loaded).  The caller loads the stored policy into
the Limits page with ``set_policy``; until then that page is disabled.  Fields the form does not
show (extensions, assets, unknown keys, lorebook entry details) are carried over from the original
card untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui.card_fields import GreetingsEditor, LorebookTable
from nexus_desktop.ui.chat_view import describe_error
from nexus_desktop.ui.memories_page import MemoriesPage
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.policy_editor import LimitsEditor
from nexus_desktop.ui.widgets import Avatar, BannerArea, fit_to_screen, push_button

if TYPE_CHECKING:
    from nexus_desktop.cards.model import CharacterCard
    from nexus_desktop.control.policy import Policy
    from nexus_desktop.db.tables import Character
    from nexus_desktop.engram.service import Engram

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.gif);;All files (*)"
CARD_FILTER = "Character cards (*.png *.json *.charx);;All files (*)"
EXPORT_FILTER = "PNG card (*.png);;JSON card, V2 (*.json);;JSON card, V3 (*.json)"
MAX_AVATAR_SIDE = 1024
IDENTITY_WIDTH = 260
MIN_FIELD_HEIGHT = 64
NAME_REQUIRED = "Give the character a name before saving."

# (card field, label, placeholder, height in px)
_TEXT_FIELDS: dict[str, list[tuple[str, str, str, int]]] = {
    "Persona": [
        ("description", "Description", "Who is {{char}}? Looks, background, what matters to them.", 180),
        ("personality", "Personality", "A short summary: curious, dry humour, fiercely loyal…", 80),
        ("scenario", "Scenario", "Where and when the chat takes place.", 80),
    ],
    "Greetings": [("first_mes", "First message", "How {{char}} opens a new chat with {{user}}.", 130)],
    "Examples": [
        (
            "mes_example",
            "Example dialogue",
            "<START>\n{{user}}: Hi!\n{{char}}: *looks up* Oh, hello there.",
            300,
        )
    ],
    "Prompt": [
        ("system_prompt", "System prompt", "Leave empty to use NEXUS's default roleplay prompt.", 130),
        (
            "post_history_instructions",
            "Post-history instructions",
            "Reminders placed after the chat history, e.g. 'Stay in character.'",
            100,
        ),
    ],
}


def read_avatar(path: Path) -> bytes:
    """Any image as PNG bytes, scaled down to at most 1024 px (runs off the Qt thread)."""
    from PIL import Image

    from nexus_desktop.cards.avatar import png_bytes

    try:
        with Image.open(path) as image:
            image.thumbnail((MAX_AVATAR_SIDE, MAX_AVATAR_SIDE))
            return png_bytes(image.convert("RGBA"))
    except OSError as error:
        raise ValueError(
            f"{path.name} is not an image this app can read ({error}); pick a PNG or JPEG."
        ) from None


class CharacterEditor(QDialog):
    saved = Signal(object, object)
    """(CharacterCard, avatar PNG bytes or None)"""

    def __init__(
        self,
        parent: QWidget | None,
        character: Character | None = None,
        tool_names: Sequence[str] = (),
        engram: Engram | None = None,
    ) -> None:
        """``engram``: where the Memories page reads and writes (no page without it, or for a new
        character)."""
        super().__init__(parent)
        self.character = character
        self.engram = engram
        self.tool_names = list(tool_names)
        self.chosen_policy: Policy | None = None
        self.policy_loaded = character is None  # a new character has no limits yet
        self._base: dict[str, Any] = dict(character.card) if character is not None else {}
        self.avatar_png: bytes | None = character.avatar if character is not None else None
        self.setWindowTitle("Edit character" if character else "New character")
        fit_to_screen(self, 1040, 720)
        self.fields: dict[str, QPlainTextEdit] = {}
        self._build()
        self.load_card_data(self._base, self.avatar_png)

    # Layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 18)
        layout.setSpacing(14)
        title = QLabel(f"Edit {self.character.name}" if self.character else "New character")
        title.setObjectName("DialogTitle")
        layout.addWidget(title)

        body = QHBoxLayout()
        body.setSpacing(20)
        # In a short window the picture and the fields scroll rather than squeeze the tabs.
        identity = QScrollArea()
        identity.setWidget(self._identity_panel())
        identity.setWidgetResizable(True)
        identity.setFrameShape(QScrollArea.Shape.NoFrame)
        identity.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        identity.setFixedWidth(IDENTITY_WIDTH + 12)
        body.addWidget(identity)
        self.tabs = QTabWidget()
        for tab_name, fields in _TEXT_FIELDS.items():
            self.tabs.addTab(self._text_tab(tab_name, fields), tab_name)
        self.lorebook = LorebookTable()
        lore_page = QWidget()
        lore_layout = QVBoxLayout(lore_page)
        lore_layout.setContentsMargins(16, 16, 16, 16)
        lore_layout.addWidget(self.lorebook)
        self.tabs.addTab(lore_page, "Lorebook")
        self.limits = LimitsEditor(self.tool_names)
        self.limits.setEnabled(self.policy_loaded)
        self.tabs.addTab(self.limits, "Limits")
        self.memories: MemoriesPage | None = None
        if self.engram is not None and self.character is not None and self.character.id is not None:
            self.memories = MemoriesPage(self.engram, self.character.id, self.character.name, self.show_error)
            self.tabs.addTab(self.memories, "Memories")
        body.addWidget(self.tabs, 1)
        layout.addLayout(body, 1)

        self.banners = BannerArea()
        layout.addWidget(self.banners)

        footer = QHBoxLayout()
        self.import_button = push_button("Import card…", icon_name="import")
        self.import_button.setToolTip("Fill this form from a character card file (PNG, JSON or CHARX)")
        self.export_button = push_button("Export…", icon_name="export")
        self.export_button.setToolTip("Save this character as a PNG or JSON card")
        self.cancel_button = push_button("Cancel")
        self.save_button = push_button("Save character", role="primary", icon_name="check")
        self.import_button.clicked.connect(self._choose_import)
        self.export_button.clicked.connect(self._choose_export)
        self.cancel_button.clicked.connect(self.reject)
        self.save_button.clicked.connect(self.save)
        self.save_button.setDefault(True)
        for button in (self.import_button, self.export_button):
            footer.addWidget(button)
        footer.addStretch(1)
        footer.addWidget(self.cancel_button)
        footer.addWidget(self.save_button)
        layout.addLayout(footer)

    def _identity_panel(self) -> QWidget:
        panel = QWidget()
        panel.setFixedWidth(IDENTITY_WIDTH)
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(10)
        self.avatar = Avatar(136)
        column.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignHCenter)
        buttons = QHBoxLayout()
        self.avatar_button = push_button("Choose image…", icon_name="image")
        self.remove_avatar_button = push_button("Remove")
        self.avatar_button.clicked.connect(self._choose_avatar)
        self.remove_avatar_button.clicked.connect(lambda: self._set_avatar(None))
        buttons.addWidget(self.avatar_button, 1)
        buttons.addWidget(self.remove_avatar_button)
        column.addLayout(buttons)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        form.setVerticalSpacing(6)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Required")
        self.name_edit.setAccessibleName("Name")
        self.name_edit.textChanged.connect(self._name_changed)
        self.tags_edit = QLineEdit()
        self.tags_edit.setAccessibleName("Tags")
        self.tags_edit.setPlaceholderText("fantasy, mentor, sci-fi")
        self.creator_edit = QLineEdit()
        self.creator_edit.setAccessibleName("Creator")
        self.creator_notes = QPlainTextEdit()
        self.creator_notes.setAccessibleName("Creator notes")
        self.creator_notes.setMinimumHeight(MIN_FIELD_HEIGHT)
        self.creator_notes.setPlaceholderText("Notes for people using this card (not sent to the model).")
        form.addRow("Name", self.name_edit)
        form.addRow("Tags", self.tags_edit)
        form.addRow("Creator", self.creator_edit)
        form.addRow("Creator notes", self.creator_notes)
        column.addLayout(form, 1)
        return panel

    def _text_tab(self, tab_name: str, fields: list[tuple[str, str, str, int]]) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(6)
        for key, label, placeholder, height in fields:
            caption = QLabel(label)
            caption.setObjectName("SenderName")
            editor = QPlainTextEdit()
            editor.setPlaceholderText(placeholder)
            editor.setAccessibleName(label)
            editor.setMinimumHeight(min(height, MIN_FIELD_HEIGHT))  # ``height`` shares out the rest
            self.fields[key] = editor
            layout.addWidget(caption)
            layout.addWidget(editor, height)
        if tab_name == "Greetings":
            caption = QLabel("Alternate greetings")
            caption.setObjectName("SenderName")
            self.greetings = GreetingsEditor()
            layout.addSpacing(8)
            layout.addWidget(caption)
            layout.addWidget(self.greetings, 200)
        hint = QLabel("{{char}} and {{user}} are replaced by the character's and your name.")
        hint.setObjectName("FieldHelp")
        layout.addWidget(hint)
        return page

    # Data ---------------------------------------------------------------------------------

    def load_card_data(self, data: dict[str, Any], avatar: bytes | None) -> None:
        self._base = dict(data)
        self.name_edit.setText(str(data.get("name") or ""))
        self.tags_edit.setText(", ".join(str(t) for t in data.get("tags") or []))
        self.creator_edit.setText(str(data.get("creator") or ""))
        self.creator_notes.setPlainText(str(data.get("creator_notes") or ""))
        for key, editor in self.fields.items():
            editor.setPlainText(str(data.get(key) or ""))
        self.greetings.set_greetings([str(g) for g in data.get("alternate_greetings") or []])
        self.lorebook.set_book(data.get("character_book"))
        self._set_avatar(avatar)

    def card_data(self) -> dict[str, Any]:
        data = dict(self._base)
        data["name"] = self.name_edit.text().strip()
        data["tags"] = [t.strip() for t in self.tags_edit.text().split(",") if t.strip()]
        data["creator"] = self.creator_edit.text().strip()
        data["creator_notes"] = self.creator_notes.toPlainText()
        for key, editor in self.fields.items():
            data[key] = editor.toPlainText()
        data["alternate_greetings"] = self.greetings.greetings()
        data["character_book"] = self.lorebook.book()
        return data

    def build_card(self) -> CharacterCard:
        """The form as a card; raises ``ValueError`` (CardError) with a sentence saying what to fix."""
        from nexus_desktop.cards.convert import card_from_record

        if not self.name_edit.text().strip():
            raise ValueError(NAME_REQUIRED)
        return card_from_record(self.card_data())

    def set_policy(self, policy: Policy) -> None:
        """Show the stored policy on the Limits page and let it be edited."""
        self.limits.set_policy(policy)
        self.limits.setEnabled(True)
        self.policy_loaded = True

    def policy_unreadable(self, error: BaseException) -> None:
        """The stored policy cannot be read (the governor enforces none of it): say so, and let the
        user set the limits again from an empty page; saving replaces the unreadable ones."""
        from nexus_desktop.control.policy import Policy

        self.banners.show_banner(
            "warning",
            f"This character's limits could not be read, so none are enforced ({error}) "
            "Set them again on the Limits page; saving replaces them.",
        )
        self.set_policy(Policy())

    def _set_avatar(self, avatar: bytes | None) -> None:
        self.avatar_png = avatar
        self.remove_avatar_button.setEnabled(avatar is not None)
        self._refresh_avatar()

    def _name_changed(self, name: str) -> None:
        self._refresh_avatar()
        if name.strip():  # the name it asked for is there now
            for banner in self.banners.banners():
                if banner.text == NAME_REQUIRED:
                    banner.dismiss()

    def _refresh_avatar(self) -> None:
        self.avatar.set_avatar(self.avatar_png, self.name_edit.text().strip() or "?")

    # Actions ------------------------------------------------------------------------------

    def save(self) -> None:
        try:
            card = self.build_card()
        except ValueError as error:
            self.show_error(error)
            self.name_edit.setFocus()
            return
        if self.policy_loaded:
            from nexus_desktop.control.policy import PolicyError

            try:
                self.chosen_policy = self.limits.policy()
            except PolicyError as error:  # nothing is saved; every field keeps what was typed
                self.show_error(error)
                self.tabs.setCurrentWidget(self.limits)
                return
        self.saved.emit(card, self.avatar_png)
        self.accept()

    def show_error(self, error: BaseException) -> None:
        self.banners.show_banner("error", describe_error(error))

    def _choose_avatar(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a picture", "", IMAGE_FILTER)
        if path:
            QueryOp(parent=self, op=lambda: read_avatar(Path(path)), success=self._set_avatar).failure(
                self.show_error
            ).run_in_background()

    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a character card", "", CARD_FILTER)
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> None:
        """Fill the form from a card file; a bad file leaves the form as it was and says why."""
        from nexus_desktop.cards.io import card_to_record, load_card_with_avatar

        def work() -> tuple[dict[str, Any], bytes | None]:
            card, avatar = load_card_with_avatar(path)
            return card_to_record(card)[1], avatar

        def loaded(result: tuple[dict[str, Any], bytes | None]) -> None:
            self.banners.clear()
            self.load_card_data(*result)
            self.banners.show_banner("info", f"Loaded {path.name}. Check the fields, then save.")

        QueryOp(parent=self, op=work, success=loaded).failure(self.show_error).run_in_background()

    def _choose_export(self) -> None:
        try:
            card = self.build_card()
        except ValueError as error:
            self.show_error(error)
            return
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export character", f"{card.name}.png", EXPORT_FILTER
        )
        if path:
            self.export_file(Path(path), 3 if "V3" in chosen else 2 if "V2" in chosen else None)

    def export_file(self, path: Path, version: int | None) -> None:
        from nexus_desktop.cards.io import save_card

        card = self.build_card()
        avatar = self.avatar_png

        def work() -> Path:
            save_card(card, path, version=version, avatar_png=avatar)
            return path

        QueryOp(
            parent=self, op=work, success=lambda p: self.banners.show_banner("info", f"Exported to {p}.")
        ).failure(self.show_error).run_in_background()
