"""The chat's keyboard shortcuts: one table, registered on the window and listed in the help dialog.

A shortcut that does not apply where the focus is (Esc with no reply being written, Up outside
the message box, Ctrl+Enter while a message is being edited) hands its key to the focused widget,
so lists, editors and fields keep their own keys.  The message box lets the arrow keys through to
these shortcuts only while it is empty (``ComposerInput``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

if TYPE_CHECKING:
    from nexus_desktop.ui.main_window import MainWindow
    from nexus_desktop.ui.message_widget import MessageWidget
    from nexus_desktop.ui.shortcuts_dialog import ShortcutsDialog


class Shortcut(NamedTuple):
    label: str
    """The keys as the help dialog shows them."""
    keys: tuple[str, ...]
    """Key sequences (QKeySequence's portable text) that trigger it."""
    does: str
    action: str
    """The ``ChatShortcuts`` method that carries it out; it returns False when it does not apply."""


SHORTCUTS = (
    Shortcut("Esc", ("Esc",), "Stop the reply being written", "stop"),
    Shortcut("Up arrow", ("Up",), "Edit your last message (in the empty message box)", "edit_last"),
    Shortcut("Left arrow", ("Left",), "Previous alternative of the last reply", "swipe_back"),
    Shortcut("Right arrow", ("Right",), "Next alternative of the last reply, or a new one", "swipe_on"),
    Shortcut("Ctrl+Enter", ("Ctrl+Return", "Ctrl+Enter"), "Regenerate the last reply", "regenerate"),
    Shortcut("Alt+C", ("Alt+C",), "Continue the last reply: the character writes on", "continue_reply"),
    Shortcut("Alt+I", ("Alt+I",), "Impersonate: write your next message for you to edit", "impersonate"),
    Shortcut("Ctrl+K", ("Ctrl+K",), "Search characters", "search"),
    Shortcut("F1", ("F1",), "Show these shortcuts", "help"),
)
"""Left and right swipe while the message box is empty or does not have the focus."""

TYPING_KEYS = (
    ("Enter", "Send the message"),
    ("Shift+Enter", "Start a new line in the message"),
    ("Ctrl+Enter", "Save a message you are editing"),
    ("Esc", "Cancel editing a message"),
    ("Tab", "Move to the next control (sidebar, chat, message box)"),
)
"""Keys the message box and the message editor handle themselves, listed in the help dialog."""


class ChatShortcuts(QObject):
    """The window's shortcuts (``SHORTCUTS``) and the help dialog behind F1 and the top bar's "?"."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.shortcuts: list[QShortcut] = []
        self.dialog: ShortcutsDialog | None = None
        for row in SHORTCUTS:
            action: Callable[[], bool] = getattr(self, row.action)
            for keys in row.keys:
                shortcut = QShortcut(QKeySequence(keys), window)
                shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
                shortcut.activated.connect(lambda a=action, s=shortcut: self._run(a, s))
                self.shortcuts.append(shortcut)
        window.top_bar.help_button.clicked.connect(self.help)

    def _run(self, action: Callable[[], bool], shortcut: QShortcut) -> None:
        if not action():
            _hand_on(shortcut)

    # Actions: each returns True when it did something, False to hand the key on --------------

    def stop(self) -> bool:
        chat = self.window.chat_view
        if not self._on_chat() or not chat.busy:
            return False
        chat.stop()
        return True

    def edit_last(self) -> bool:
        if not self._on_chat() or not self._composer_focused_and_empty() or self.window.chat_view.busy:
            return False
        mine = [w for w in self._messages() if w.role == "user" and w.message.id is not None]
        if not mine:
            return False
        mine[-1].start_edit()
        self.window.chat_view.scroll_area.ensureWidgetVisible(mine[-1])
        return True

    def swipe_back(self) -> bool:
        return self._swipe(-1)

    def swipe_on(self) -> bool:
        return self._swipe(+1)

    def regenerate(self) -> bool:
        focus = QApplication.focusWidget()
        if not self._on_chat() or (_takes_text(focus) and focus is not self.window.chat_view.composer.input):
            return False  # Ctrl+Enter saves a message being edited
        if self.window.chat_view.busy:
            return True  # one reply at a time; the key means nothing else here
        self.window.chat_view.regenerate()
        return True

    def continue_reply(self) -> bool:
        if not self._on_chat():
            return False
        self.window.chat_view.continue_reply()  # says what to do when there is nothing to continue
        return True

    def impersonate(self) -> bool:
        if not self._on_chat():
            return False
        self.window.chat_view.impersonate()
        return True

    def search(self) -> bool:
        self.window.show_page("chat")
        search = self.window.sidebar.search
        search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        search.selectAll()
        return True

    def help(self) -> bool:
        from nexus_desktop.ui.shortcuts_dialog import ShortcutsDialog

        if self.dialog is None:
            self.dialog = ShortcutsDialog(self.window)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return True

    # Where the focus is ----------------------------------------------------------------------

    def _on_chat(self) -> bool:
        return self.window.current_page() == "chat"

    def _composer_focused_and_empty(self) -> bool:
        composer = self.window.chat_view.composer
        return composer.input.hasFocus() and not composer.text

    def _messages(self) -> list[MessageWidget]:
        from nexus_desktop.ui.message_widget import MessageWidget

        return [w for w in self.window.chat_view.widgets if isinstance(w, MessageWidget)]

    def _swipe(self, step: int) -> bool:
        # The arrows move the cursor in a search box, a field or a message being written.
        typing = _takes_text(QApplication.focusWidget()) and not self._composer_focused_and_empty()
        if not self._on_chat() or typing or self.window.chat_view.busy:
            return False
        messages = self._messages()
        widgets = self.window.chat_view.widgets
        if not messages or widgets[-1] is not messages[-1]:
            return False  # no reply last (a tool result, or an empty chat)
        button = messages[-1].swipe_left if step < 0 else messages[-1].swipe_right
        if not button.isVisible() or not button.isEnabled():
            return False
        button.click()
        return True


def _takes_text(widget: QWidget | None) -> bool:
    return isinstance(widget, QLineEdit | QPlainTextEdit | QTextEdit) and not widget.isReadOnly()


def _hand_on(shortcut: QShortcut) -> None:
    """Give a shortcut's key to the focused widget, as if there were no shortcut."""
    focus = QApplication.focusWidget()
    if focus is None:
        return
    combination = shortcut.key()[0]  # type: ignore[index]  # QKeySequence's [] has no stub
    event = QKeyEvent(QEvent.Type.KeyPress, combination.key(), combination.keyboardModifiers())
    shortcut.setEnabled(False)  # a key sent from here meets the shortcuts again: not this one
    try:
        QApplication.sendEvent(focus, event)
    finally:
        shortcut.setEnabled(True)
