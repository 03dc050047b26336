"""Markdown in chat messages: what a message shows, its links and code blocks, and hostile input.

What is shown is read back from a QTextDocument (the text, its colours, its links, its tables),
not from the HTML string.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication, QTextCharFormat, QTextDocument, QTextTable
from PySide6.QtWidgets import QApplication, QMessageBox

from nexus_desktop.ui.markdown import SHOWN_ROWS, MarkdownColors, render
from nexus_desktop.ui.message_text import RENDER_HERE_CHARS, MessageText
from tests import ui_support

qt_loop = ui_support.qt_loop

COLORS = MarkdownColors(
    text="#e7e9f1",
    action="#a4a9bd",
    speech="#d2d0f4",
    link="#9183ff",
    muted="#6f7590",
    border="#343a52",
    code_background="#0e1016",
    dark=True,
)


def document(markdown: str) -> QTextDocument:
    shown = QTextDocument()
    shown.setHtml(render(markdown, COLORS).html)
    return shown


def fragments(shown: QTextDocument) -> Iterator[tuple[str, QTextCharFormat]]:
    block = shown.begin()
    while block.isValid():
        piece = block.begin()
        while not piece.atEnd():
            fragment = piece.fragment()
            yield fragment.text(), fragment.charFormat()
            piece += 1
        block = block.next()


def colour_of(shown: QTextDocument, text: str) -> str:
    return next(f.foreground().color().name() for t, f in fragments(shown) if text in t)


def tables(shown: QTextDocument) -> list[QTextTable]:
    found: list[QTextTable] = []
    pending = [shown.rootFrame()]
    while pending:
        frame = pending.pop()
        if isinstance(frame, QTextTable):
            found.append(frame)
        pending.extend(frame.childFrames())
    return found


def list_depth(shown: QTextDocument) -> int:
    deepest, block = 0, shown.begin()
    while block.isValid():
        if block.textList() is not None:
            deepest = max(deepest, block.textList().format().indent())
        block = block.next()
    return deepest


# What a message shows -------------------------------------------------------------------------


def test_lists_headings_quotes_tables_and_links_are_shown_as_such(qapp: Any) -> None:
    shown = document(
        "# Status\n\n1. reactor\n2. shields\n   - fore\n   - aft\n\n> logged\n\n"
        "| deck | crew |\n|---|--:|\n| bridge | 6 |\n\nSee [the manual](https://example.com/m)."
    )

    text = shown.toPlainText()
    for words in ("Status", "reactor", "shields", "fore", "aft", "logged", "bridge", "the manual"):
        assert words in text
    assert "#" not in text and "|" not in text and ">" not in text  # the markup itself is gone
    assert list_depth(shown) == 2  # the nested list is a list inside a list
    crew = next(t for t in tables(shown) if t.columns() == 2)  # the quote's bar is a table too
    assert (crew.rows(), crew.cellAt(1, 0).firstCursorPosition().block().text()) == (2, "bridge")
    links = {f.anchorHref() for t, f in fragments(shown) if t == "the manual"}
    assert links == {"https://example.com/m"}


def test_roleplay_actions_and_speech_keep_their_colours_but_not_inside_code(qapp: Any) -> None:
    shown = document('*smiles* "Hello there," she says. `say("not speech")`')

    assert colour_of(shown, "smiles") == COLORS.action
    assert next(f.fontItalic() for t, f in fragments(shown) if "smiles" in t)
    assert colour_of(shown, '"Hello there,"') == COLORS.speech
    assert colour_of(shown, "she says") != COLORS.speech  # positive control: plain text
    assert colour_of(shown, 'say("not speech")') != COLORS.speech


def test_an_unclosed_quote_colours_nothing(qapp: Any) -> None:
    shown = document('He said "wait and left.')
    assert colour_of(shown, "wait and left") != COLORS.speech


def test_code_fences_are_highlighted(qapp: Any) -> None:
    shown = document("```python\ndef fly(speed):\n    return speed  # fast\n```")
    colours = {colour_of(shown, word) for word in ("def", "fly", "# fast")}
    assert len(colours) == 3  # keyword, name and comment each have their own colour
    assert "def fly(speed):" in shown.toPlainText()


def test_raw_html_and_unsafe_links_are_shown_as_the_text_written(qapp: Any) -> None:
    shown = document(
        '<b>bold?</b> <img src="x"> [run](javascript:alert(1)) [file](file:///etc/passwd) '
        "<file:///etc/passwd> [ok](https://example.com)"
    )
    text = shown.toPlainText()
    assert "<b>bold?</b>" in text and '<img src="x">' in text
    assert "[run](javascript:alert(1))" in text and "[file](file:///etc/passwd)" in text
    hrefs = {f.anchorHref() for _, f in fragments(shown) if f.isAnchor()}
    assert hrefs == {"https://example.com"}  # positive control: a web link stays a link


# Links and Copy in a real label ---------------------------------------------------------------


class UrlCatcher(QObject):
    """Takes the place of the browser: QDesktopServices hands it the URLs it would open."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


@pytest.fixture
def browser() -> Iterator[UrlCatcher]:
    catcher = UrlCatcher()
    for scheme in ("http", "https", "file"):
        QDesktopServices.setUrlHandler(scheme, catcher, "open")
    yield catcher
    for scheme in ("http", "https", "file"):
        QDesktopServices.unsetUrlHandler(scheme)


def message_box(qtbot: Any) -> QMessageBox:
    def shown() -> list[QMessageBox]:
        return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]

    qtbot.waitUntil(lambda: bool(shown()))
    return shown()[0]


def activate_link(qtbot: Any, label: MessageText, tabs: int = 1) -> None:
    """Reach a link with the keyboard, as a user without a mouse would, and press Enter."""
    label.setFocus()
    for _ in range(tabs):
        qtbot.keyClick(label, Qt.Key.Key_Tab)
    qtbot.keyClick(label, Qt.Key.Key_Return)


def test_a_link_opens_in_the_browser_only_after_the_user_confirms(qtbot: Any, browser: UrlCatcher) -> None:
    label = MessageText()
    qtbot.addWidget(label)
    label.show_markdown("Read [the log](https://example.com/log?id=7).")
    label.show()

    activate_link(qtbot, label)
    box = message_box(qtbot)
    assert "https://example.com/log?id=7" in box.text() and "browser" in box.text()
    assert browser.opened == []  # nothing opens before the answer
    box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: not box.isVisible())
    assert browser.opened == []

    activate_link(qtbot, label)
    box = message_box(qtbot)
    next(b for b in box.buttons() if b.text() == "Open").click()
    qtbot.waitUntil(lambda: browser.opened == ["https://example.com/log?id=7"])


def test_a_file_or_script_link_is_refused_with_a_reason(qtbot: Any, browser: UrlCatcher) -> None:
    label = MessageText()
    qtbot.addWidget(label)
    label.show()
    label.linkActivated.emit("file:///etc/passwd")  # a link markdown let through would arrive so
    box = message_box(qtbot)
    assert "not opened" in box.text() and "http" in box.text()
    assert box.buttons() and all(b.text() != "Open" for b in box.buttons())
    box.close()
    assert browser.opened == []


def test_copy_on_a_code_block_copies_that_blocks_raw_code(qtbot: Any) -> None:
    label = MessageText()
    qtbot.addWidget(label)
    first, second = 'print("one")\nx = 1 < 2', "echo two"
    label.show_markdown(f"First:\n\n```python\n{first}\n```\n\nSecond:\n\n```sh\n{second}\n```\n")
    label.show()
    assert label.code_blocks == (first, second)

    activate_link(qtbot, label, tabs=2)  # the second block's Copy
    assert QGuiApplication.clipboard().text() == second
    activate_link(qtbot, label, tabs=1)
    assert QGuiApplication.clipboard().text() == first


# Hostile input ----------------------------------------------------------------------------------


def test_a_huge_table_shows_its_first_rows_and_says_how_many_are_left(qapp: Any) -> None:
    rows = "\n".join(f"| {i} | crew {i} |" for i in range(10_000))
    shown = document(f"| n | name |\n|---|---|\n{rows}")
    [table] = tables(shown)
    assert table.rows() == 1 + SHOWN_ROWS + 1  # header, the rows shown, the note
    assert f"{10_000 - SHOWN_ROWS:,} more rows not shown" in shown.toPlainText()


def test_deeply_nested_lists_show_deep_levels_as_plain_lines_and_lose_no_text(qapp: Any) -> None:
    nested = "\n".join("  " * i + f"- item {i}" for i in range(50))
    shown = document(nested)
    assert all(f"item {i}" in shown.toPlainText() for i in range(50))  # markdown-it alone drops 10+
    assert list_depth(shown) <= 6  # deeper levels are plain lines, not 50 indents

    thousand = document("\n".join("  " * i + f"- item {i}" for i in range(1000)))
    assert "item 0" in thousand.toPlainText() and "item 100" in thousand.toPlainText()
    assert "too long to show here; Copy and Edit have all of it" in thousand.toPlainText()

    quoted = document(">" * 1000 + " deep down\n\nafter")
    assert "deep down" in quoted.toPlainText() and "after" in quoted.toPlainText()


def test_a_megabyte_code_block_shows_its_start_and_copies_whole(qapp: Any) -> None:
    code = "\n".join(f"value_{i} = {i} * 2  # line {i}" for i in range(30_000))
    assert len(code) > 1_000_000
    rendered = render(f"```python\n{code}\n```", COLORS)
    assert rendered.code_blocks == (code,)
    shown = QTextDocument()
    shown.setHtml(rendered.html)
    text = shown.toPlainText()
    assert "value_0 = 0 * 2" in text and "value_29999" not in text
    assert "more lines not shown; Copy copies the whole block" in text


def test_a_huge_paragraph_is_cut_with_a_note(qapp: Any) -> None:
    shown = document("word " * 200_000)
    assert len(shown.toPlainText()) < 20_000
    assert "too long to show here; Copy and Edit have all of it" in shown.toPlainText()
    short = document("word " * 100)  # positive control
    assert "too long" not in short.toPlainText()


def test_a_long_message_is_rendered_off_the_qt_thread_and_then_shown(qtbot: Any, qt_loop: Any) -> None:
    label = MessageText()
    qtbot.addWidget(label)
    long_text = "Intro line.\n\n" + "\n".join(f"- point {i} with **bold**" for i in range(2_000))
    assert len(long_text) > RENDER_HERE_CHARS

    started = time.perf_counter()
    label.show_markdown(long_text)
    returned = time.perf_counter() - started
    assert label.raw_text == long_text
    assert "<b>" not in label.text() and "**bold**" in label.text()  # the plain preview meanwhile

    qtbot.waitUntil(lambda: "point 5 with" in label.text() and "**bold**" not in label.text(), timeout=60_000)
    assert returned < 0.5  # rendering took place elsewhere; generous: the machine is shared
    assert "<ul" in label.text()  # the list, rendered
