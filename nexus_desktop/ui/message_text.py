"""A message's text on screen: Markdown rendered to rich text, links and code blocks' Copy.

Short messages are rendered at once; a long one (over ``RENDER_HERE_CHARS``) is rendered on a
worker thread and shown when ready, so the Qt thread never parses a huge message: while it
renders, the text shown so far stays (or the start of the text, plainly, the first time).
``markdown.render`` also caps what Qt has to lay out, so showing the result is quick too.

A link opens only after the user confirms it, and only http, https and mailto links open.
"""

from __future__ import annotations

import functools
import html
import logging
import math

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCursor, QDesktopServices, QGuiApplication, QTextDocument
from PySide6.QtWidgets import QLabel, QMessageBox, QSizePolicy, QToolTip, QWidget

from nexus_desktop.ui import theme
from nexus_desktop.ui.code_block import COPY_SCHEME
from nexus_desktop.ui.markdown import MarkdownColors, Rendered, link_allowed, render
from nexus_desktop.ui.ops import QueryOp

log = logging.getLogger(__name__)

RENDER_HERE_CHARS = 4_000
"""Longer messages are rendered on a worker thread."""
HUG_CHARS = 2_000
"""Up to this much rich text, a bubble is as wide as its text; longer text takes the full width."""
PREVIEW_CHARS = 2_000


def markdown_colors() -> MarkdownColors:
    """The current theme's colours, read when a message is rendered (the theme can change)."""
    c = theme.COLORS
    return MarkdownColors(
        text=c.text,
        action=c.text_dim,
        speech=_mix(c.text, c.accent, 0.3),
        link=c.accent_hover,
        muted=c.muted,
        border=c.border_strong,
        code_background=c.window,
        dark=_lightness(c.window) < 0.5,
    )


class MessageText(QLabel):
    """Selectable rich text whose width hugs short messages and wraps long ones."""

    rendered = Signal()
    """A text rendered on a worker thread is shown (or was dropped for a newer one)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageText")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setOpenExternalLinks(False)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Minimum)
        self.linkActivated.connect(self._link_activated)
        self._raw = ""
        self._max_width = 560
        self._code_blocks: tuple[str, ...] = ()
        self._wanted = 0  # the latest text's number: a slower render of older text is dropped
        self._rendering = False
        self._markdown = False  # the text is Markdown to render again when the theme changes
        self._heights: dict[int, int] = {}  # width -> height, for the text shown
        self._set_links(False)
        theme.appearance_changed().connect(self._restyle)

    @property
    def raw_text(self) -> str:
        return self._raw

    @property
    def code_blocks(self) -> tuple[str, ...]:
        return self._code_blocks

    @property
    def rendering(self) -> bool:
        """A long text is being rendered on a worker thread; what is shown is older or a preview."""
        return self._rendering

    def set_content(self, raw: str, rich: str | None = None) -> None:
        """Show ``raw`` as Markdown, or the given rich text as it is."""
        if rich is None:
            self.show_markdown(raw)
            return
        self._wanted += 1
        self._raw = raw
        self._markdown = False
        self._show(Rendered(rich))

    def show_markdown(self, raw: str) -> None:
        self._wanted += 1
        self._raw = raw
        self._markdown = True
        if len(raw) <= RENDER_HERE_CHARS:
            self._show(render(raw, markdown_colors()))
        elif not self._rendering:
            if not self.text():
                self._show(_plain_preview(raw))
            self._render_elsewhere()
        # else: the render running now is for older text; when it is done, this text is rendered

    def _render_elsewhere(self) -> None:
        self._rendering = True
        number, raw = self._wanted, self._raw
        QueryOp(
            parent=self,
            op=functools.partial(render, raw, markdown_colors()),
            success=lambda rendered: self._rendered(number, rendered),
        ).failure(self._render_failed).run_in_background()

    def _rendered(self, number: int, rendered: Rendered) -> None:
        self._rendering = False
        if number == self._wanted:
            self._show(rendered)
        elif len(self._raw) > RENDER_HERE_CHARS:
            self._render_elsewhere()
        # In the next turn: this one lays the new text out and paints it first.
        QTimer.singleShot(0, self, self.rendered.emit)

    def _render_failed(self, error: BaseException) -> None:
        log.error("Could not render a message's Markdown; it is shown as plain text", exc_info=error)
        self._rendering = False
        self._show(_plain_preview(self._raw))
        self.rendered.emit()

    def _show(self, rendered: Rendered) -> None:
        self._code_blocks = rendered.code_blocks
        self._set_links("<a " in rendered.html)
        self._heights.clear()
        self.setText(rendered.html)
        self._fit()

    def _set_links(self, links: bool) -> None:
        # Only text with links takes keyboard focus (Tab reaches its links and Copy), so the
        # Tab key does not stop at every message.
        flags = Qt.TextInteractionFlag.TextSelectableByMouse
        if links:
            flags |= Qt.TextInteractionFlag.LinksAccessibleByMouse
            flags |= Qt.TextInteractionFlag.LinksAccessibleByKeyboard
        self.setTextInteractionFlags(flags)

    def _restyle(self) -> None:
        """The palette or font size changed: colours come from the theme, so render again."""
        if self._markdown:
            self.show_markdown(self._raw)
        else:
            self._fit()

    # Size -----------------------------------------------------------------------------------
    # QLabel lays its whole text out again on every heightForWidth() call (twice, in fact), and
    # layouts ask several times per pass; the answer only changes with the text, font or width.

    def heightForWidth(self, width: int) -> int:
        # Layouts offer a wider column than the fixed width _fit() chose; wrapping at that width
        # counted too few lines and the bubble cut its last one off in a narrow window.
        width = min(width, self.maximumWidth())
        height = self._heights.get(width)
        if height is None:
            height = self._heights[width] = super().heightForWidth(width)
        return height

    def sizeHint(self) -> QSize:
        width = self.minimumWidth()  # the fixed width _fit() chose
        return QSize(width, self.heightForWidth(width)) if width else super().sizeHint()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._heights.clear()
        super().changeEvent(event)

    # Width --------------------------------------------------------------------------------

    @property
    def max_width(self) -> int:
        return self._max_width

    def set_max_width(self, width: int) -> None:
        if width != self._max_width:
            self._max_width = width
            self._fit()

    def _fit(self) -> None:
        if len(self.text()) > HUG_CHARS:
            self.setFixedWidth(self._max_width)  # long text fills the width: no second layout
            return
        self.ensurePolished()
        document = QTextDocument()
        document.setDocumentMargin(0)
        document.setDefaultFont(self.font())
        document.setHtml(self.text())
        natural = math.ceil(document.idealWidth()) + 6
        self.setFixedWidth(max(24, min(natural, self._max_width)))

    # Links --------------------------------------------------------------------------------

    def _link_activated(self, href: str) -> None:
        scheme, _, rest = href.partition(":")
        if scheme == COPY_SCHEME and rest.isdigit() and int(rest) < len(self._code_blocks):
            self.copy_code(int(rest))
        else:
            confirm_and_open(self, href)

    def copy_code(self, index: int) -> None:
        code = self._code_blocks[index]
        clipboard = QGuiApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(code)
        lines = code.count("\n") + 1
        QToolTip.showText(QCursor.pos(), f"Copied {lines} {'line' if lines == 1 else 'lines'}", self)


def confirm_and_open(parent: QWidget, href: str) -> QMessageBox:
    """Ask before a link from a message opens in the browser; other schemes never open."""
    url = QUrl(href)
    shown = html.escape(url.toString(QUrl.ComponentFormattingOption.FullyEncoded))
    if not link_allowed(href) or not url.isValid():
        text = f"This link was not opened: only web (http, https) and mail links open from a chat.<br>{shown}"
        box = QMessageBox(QMessageBox.Icon.Warning, "Link not opened", text, parent=parent)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.open()
        return box
    box = QMessageBox(QMessageBox.Icon.Question, "Open link", f"Open {shown} in your browser?", parent=parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    open_button = box.addButton("Open", QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))

    def answered() -> None:
        if box.clickedButton() is open_button:
            QDesktopServices.openUrl(url)

    box.finished.connect(answered)
    box.open()
    return box


def _plain_preview(raw: str) -> Rendered:
    return Rendered(html.escape(raw[:PREVIEW_CHARS]).replace("\n", "<br>") + " …")


def _lightness(colour: str) -> float:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return (0.299 * red + 0.587 * green + 0.114 * blue) / 255


def _mix(colour: str, other: str, amount: float) -> str:
    """``colour`` moved ``amount`` of the way towards ``other`` (both ``#rrggbb``)."""
    channels = [
        round(int(colour[i : i + 2], 16) * (1 - amount) + int(other[i : i + 2], 16) * amount)
        for i in (1, 3, 5)
    ]
    return "#" + "".join(f"{channel:02x}" for channel in channels)
