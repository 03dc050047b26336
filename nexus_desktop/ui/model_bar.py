"""The top bar (who you talk to, New chat, the model picker, Settings) and the status line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.ui import icons
from nexus_desktop.ui.theme import COLORS, STATUS_LINE_HEIGHT, TOP_BAR_HEIGHT, appearance_changed, font_scale
from nexus_desktop.ui.widgets import Avatar, ElidedLabel, icon_button, push_button, set_style_property

if TYPE_CHECKING:
    from PySide6.QtGui import QPaintEvent, QResizeEvent

    from nexus_desktop.settings import Settings

OPEN_FILE = "open-file"
REMOTE = "remote"
WORKER = "worker"
# Below this width (at 100% text) the top bar drops the avatar and New chat's and Chats' words, so
# the title, the model picker and the buttons keep their room instead of overlapping.
COMPACT_BELOW = 720
TITLE_MIN_WIDTH = {False: 120, True: 80}
PICKER_MIN_WIDTH = {False: 170, True: 120}
ROW_MARGINS = {False: (24, 10, 16, 10), True: (12, 10, 8, 10)}
ROW_SPACING = {False: 12, True: 8}


def model_label(entry: Any) -> str:
    """``SmolLM2-135M-Instruct.Q4_1 (98 MB)``: short enough for the picker, quantization once."""
    from nexus_desktop.llm.gguf_check import format_size

    stem = entry.path.stem
    if entry.info is None:
        return f"{stem} (unusable)"
    size = format_size(entry.info.file_size)
    quant = str(entry.info.quantization or "")
    return f"{stem} ({size})" if quant and quant.lower() in stem.lower() else f"{stem} ({quant}, {size})"


class ModelPicker(QComboBox):
    """Models found on disk, then "Open GGUF file…", the remote server and the remote worker."""

    local_chosen = Signal(str)
    open_file_requested = Signal()
    remote_chosen = Signal()
    worker_chosen = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ModelPicker")
        self.setAccessibleName("Model")
        self.setMinimumWidth(PICKER_MIN_WIDTH[False])
        self.setMaximumWidth(400)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(32)
        self.setIconSize(QSize(16, 16))
        self.setToolTip("The model that writes the replies")
        self._current_index = -1
        self.activated.connect(self._on_activated)
        self.addItem("Looking for models…")

    def set_models(self, entries: list[Any], settings: Settings, default_path: Path | None) -> None:
        """``entries`` are ``catalog.ModelEntry``; the chosen model is selected (and added if missing)."""
        self.blockSignals(True)
        self.clear()
        chip = icons.icon("chip", COLORS.text_dim)
        chosen = Path(settings.model_path).expanduser() if settings.model_path else default_path
        seen: set[str] = set()
        selected = -1
        for entry in entries:
            path = str(entry.path)
            seen.add(path)
            self.addItem(chip, model_label(entry), ("local", path))
            if default_path is not None and entry.path == default_path:
                self.setItemData(
                    self.count() - 1, f"{path} (bundled with NEXUS)", Qt.ItemDataRole.ToolTipRole
                )
            if not entry.usable:
                self.setItemData(self.count() - 1, entry.error, Qt.ItemDataRole.ToolTipRole)
            if settings.source == "local" and chosen is not None and entry.path == chosen:
                selected = self.count() - 1
        if chosen is not None and str(chosen) not in seen:
            self.addItem(chip, chosen.name, ("local", str(chosen)))
            if settings.source == "local":
                selected = self.count() - 1
        if settings.remote_model:
            self.addItem(
                icons.icon("server", COLORS.text_dim), f"Remote: {settings.remote_model}", (REMOTE, "")
            )
            if settings.source == "remote":
                selected = self.count() - 1
        if settings.source == "worker":  # a `nexus worker` on another PC (Settings → Remote worker)
            label = f"Remote worker: {settings.worker_url.split('://', 1)[-1]}"
            self.addItem(icons.icon("server", COLORS.text_dim), label, (WORKER, ""))
            selected = self.count() - 1
        self.insertSeparator(self.count())
        self.addItem(icons.icon("folder", COLORS.text_dim), "Open GGUF file…", (OPEN_FILE, ""))
        if not settings.remote_model:
            self.addItem(icons.icon("server", COLORS.text_dim), "Remote server…", (REMOTE, ""))
        if settings.source != "worker":
            self.addItem(icons.icon("server", COLORS.text_dim), "Remote worker…", (WORKER, ""))
        self._current_index = selected
        self.setCurrentIndex(selected)
        self.blockSignals(False)

    def paintEvent(self, event: QPaintEvent) -> None:
        """The model's name ends in "…" when the picker is narrow (the styled box would cut it)."""
        # A name that fits is painted as usual: PySide6 builds QStyle's ~10 enums (about 7 ms) on
        # first use, which the first frame need not pay.
        if self.fontMetrics().horizontalAdvance(self.currentText()) <= self.width() * 0.7:
            super().paintEvent(event)
            return
        from PySide6.QtWidgets import QStyle, QStyleOptionComboBox, QStylePainter

        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = self.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        room = field.width() - (option.iconSize.width() + 4 if not option.currentIcon.isNull() else 0)
        option.currentText = self.fontMetrics().elidedText(
            option.currentText, Qt.TextElideMode.ElideRight, max(0, room)
        )
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)

    def restore(self) -> None:
        """Back to the model in use, e.g. after the file dialog was cancelled."""
        self.setCurrentIndex(self._current_index)

    def _on_activated(self, index: int) -> None:
        data = self.itemData(index)
        if not isinstance(data, tuple):
            return
        kind, value = data
        if kind == OPEN_FILE:
            self.restore()
            self.open_file_requested.emit()
        elif kind == REMOTE:
            self.restore()
            self.remote_chosen.emit()
        elif kind == WORKER:
            self.restore()
            self.worker_chosen.emit()
        elif index != self._current_index:
            self._current_index = index
            self.local_chosen.emit(value)


class TopBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TopBar")
        self.setFixedHeight(TOP_BAR_HEIGHT)
        row = self.row = QHBoxLayout(self)
        self.avatar = Avatar(40)
        self.avatar.hide()
        row.addWidget(self.avatar)
        words = QVBoxLayout()
        words.setSpacing(0)
        self.title = ElidedLabel("NEXUS Desktop")
        self.title.setObjectName("ChatTitle")
        self.subtitle = ElidedLabel("Starting…")
        self.subtitle.setObjectName("ChatSubtitle")
        words.addStretch(1)
        words.addWidget(self.title)
        words.addWidget(self.subtitle)
        words.addStretch(1)
        row.addLayout(words, 1)
        self.new_chat_button = push_button("New chat", icon_name="new_chat")
        self.new_chat_button.setAccessibleName("New chat")
        self.new_chat_button.setToolTip("Start a new chat with this character (the old one is kept)")
        self.new_chat_button.setEnabled(False)
        self.chats_button = push_button("Chats", icon_name="chat")
        self.chats_button.setAccessibleName("Chats")
        self.chats_button.setToolTip("Every chat with this character: open, rename, branch, export, search")
        self.chats_button.setEnabled(False)
        self.model_picker = ModelPicker()
        self.settings_button = icon_button("settings", "Settings", role="icon", size=18)
        self.settings_button.setFixedSize(38, 38)
        self.help_button = icon_button("help", "Keyboard shortcuts (F1)", role="icon", size=18)
        self.help_button.setFixedSize(38, 38)
        row.addWidget(self.chats_button)
        row.addWidget(self.new_chat_button)
        row.addWidget(self.model_picker)
        row.addWidget(self.settings_button)
        row.addWidget(self.help_button)
        self._has_character = False
        self.compact = True
        self._set_compact(False)
        appearance_changed().connect(self._fit)

    def set_character(self, name: str, avatar: bytes | None, subtitle: str) -> None:
        self.avatar.set_avatar(avatar, name)
        self._has_character = True
        self.avatar.setVisible(not self.compact)
        self.title.setText(name)
        self.subtitle.setText(subtitle)
        self.new_chat_button.setEnabled(True)
        self.chats_button.setEnabled(True)

    def clear_character(self, subtitle: str = "No character selected") -> None:
        self._has_character = False
        self.avatar.hide()
        self.title.setText("NEXUS Desktop")
        self.subtitle.setText(subtitle)
        self.new_chat_button.setEnabled(False)
        self.chats_button.setEnabled(False)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        # Larger text needs more room: the threshold grows with it (never shrinks below 100%).
        self._set_compact(self.width() < COMPACT_BELOW * max(100, font_scale()) // 100)

    def _set_compact(self, compact: bool) -> None:
        """Narrow: the avatar hides, New chat shows only its icon and the title and picker take less."""
        if compact == self.compact:
            return
        self.compact = compact
        self.row.setContentsMargins(*ROW_MARGINS[compact])
        self.row.setSpacing(ROW_SPACING[compact])
        self.title.setMinimumWidth(TITLE_MIN_WIDTH[compact])
        self.model_picker.setMinimumWidth(PICKER_MIN_WIDTH[compact])
        self.new_chat_button.setText("" if compact else "New chat")
        self.chats_button.setText("" if compact else "Chats")
        for button in (self.new_chat_button, self.chats_button):
            if compact:
                button.setFixedWidth(38)
            else:
                button.setMinimumWidth(0)
                button.setMaximumWidth(16777215)
        self.avatar.setVisible(not compact and self._has_character)


class StatusLine(QFrame):
    """``● Ready · model · 4096 ctx`` on the left, the llama.cpp build on the right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("StatusLine")
        self.setFixedHeight(STATUS_LINE_HEIGHT)
        row = QHBoxLayout(self)
        row.setContentsMargins(16, 0, 16, 0)
        row.setSpacing(6)
        self.dot = QLabel("●")
        self.dot.setObjectName("StatusDot")
        self.state_label = ElidedLabel("Starting…")
        self.build_icon = QLabel()
        self.build_icon.setPixmap(icons.pixmap("chip", COLORS.muted, 14))
        self.build_label = QLabel("llama.cpp: checking…")
        row.addWidget(self.dot)
        row.addWidget(self.state_label, 1)
        row.addWidget(self.build_icon)
        row.addWidget(self.build_label)
        self.state = "idle"
        self.set_state("idle", "Starting…")

    def set_state(self, state: str, text: str) -> None:
        """``state`` is one of idle / loading / ready / error."""
        self.state = state
        set_style_property(self.dot, "state", state)
        self.state_label.setText(text)

    def set_build(self, text: str, tooltip: str = "") -> None:
        self.build_label.setText(text)
        self.build_label.setToolTip(tooltip)
