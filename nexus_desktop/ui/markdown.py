"""Markdown in chat messages, as the HTML subset that Qt's rich text shows.

CommonMark (markdown-it-py's "commonmark" preset) with tables and strikethrough.  Raw HTML is
off, so a model cannot inject markup, and links keep only http, https and mailto targets (any
other shows as the text that was written).  SillyTavern's roleplay styling stays: *actions*
(emphasis) in the action colour, "speech" in the quote colour; both apply to text only, never
inside code.  A single line break is a line break, as in SillyTavern.

Nothing here touches Qt: a long message is rendered on a worker thread.  Whatever the input, the
result stays small enough for Qt to lay out quickly: past ``SHOWN_CHARS`` of text the rest is
left out with a note (the message's Copy still copies all of it), a table shows its first
``SHOWN_ROWS`` rows, a code block its first lines (``code_block.py``), and lists or quotes
nested deeper than ``DEEPEST_LEVEL`` show their deeper lines as plain text.
"""

from __future__ import annotations

import functools
import html
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_block import table as table_rule
from markdown_it.token import Token

from nexus_desktop.ui.code_block import CodeColors, code_block_html
from nexus_desktop.ui.gc_pause import paused_garbage_collection

SHOWN_CHARS = 8_000
SHOWN_ROWS = 25
SHOWN_COLUMNS = 12
INLINE_SLACK = 200
"""Of a paragraph longer than the budget, this much more is parsed, so markup around the cut
still reads as markup."""
# What Qt's layout costs, in characters of plain text: a table cell, each change of style
# (emphasis, a link, speech) and each line break count towards SHOWN_CHARS as this many.
CELL_COST = 60
FORMAT_COST = 16
LINE_COST = 40
DEEPEST_LEVEL = 12
"""Block nesting (two levels per list, one per quote) past which lines show as plain text."""
LINK_SCHEMES = ("http", "https", "mailto")
_SPEECH = re.compile('["“”]')
_HEADING_SIZES = {"h1": "x-large", "h2": "large", "h3": "medium"}
_TEXT = ("text", "text_special")  # text_special: an escaped character or an entity
_CLOSERS = {"em": "</span></i>", "strong": "</strong>", "s": "</s>", "a": "</a>"}


@dataclass(frozen=True)
class MarkdownColors:
    text: str
    action: str
    speech: str
    link: str
    muted: str
    border: str
    code_background: str
    dark: bool

    @property
    def code(self) -> CodeColors:
        return CodeColors(self.code_background, self.muted, self.link, self.dark)


@dataclass(frozen=True)
class Rendered:
    html: str
    code_blocks: tuple[str, ...] = ()
    """The raw text of each code block, for its Copy link (``nexus-copy:N``)."""


def render(text: str, colors: MarkdownColors) -> Rendered:
    with paused_garbage_collection():
        return _render(text, colors)  # its tokens are freed on return, before collection resumes


def _render(text: str, colors: MarkdownColors) -> Rendered:
    env: dict[str, object] = {}
    blocks = _parser().parse(text, env)  # inline markup is parsed as the writer reaches it
    writer = _Writer(colors, env)
    writer.blocks(blocks)
    return Rendered("".join(writer.out), tuple(writer.code_blocks))


def link_allowed(url: str) -> bool:
    scheme, colon, _ = url.partition(":")
    return bool(colon) and scheme.strip().lower() in LINK_SCHEMES


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
    md.validateLink = link_allowed  # type: ignore[method-assign]
    md.block.ruler.at("table", _first_rows, {"alt": ["paragraph", "reference"]})
    md.block.ruler.before("table", "too_deep", _too_deep)
    # Inline markup is parsed per paragraph when it is written (``_Writer._inline``), so what
    # lies past the budget is never parsed: a 2 MB paragraph costs what its shown part does.
    md.core.ruler.disable(["inline", "text_join"])
    return md


def _first_rows(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """markdown-it's table rule on a table's first ``SHOWN_ROWS`` rows; the rest are counted
    (``meta["hidden_rows"]`` of the table's first token), not parsed: a token per cell of
    10,000 rows took long to make and, freed all at once, held up every thread."""
    first = len(state.tokens)
    if not table_rule(state, start, min(end, start + 2 + SHOWN_ROWS), silent):
        return False
    if silent:
        return True
    line = state.line
    while (
        line < end and not state.isEmpty(line) and "|" in state.src[state.bMarks[line] : state.eMarks[line]]
    ):
        line += 1
    state.tokens[first].meta["hidden_rows"] = line - state.line
    state.line = line
    return True


def _too_deep(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """Deeper than ``DEEPEST_LEVEL``: the remaining lines of this block, as plain lines.

    markdown-it itself drops everything past its nesting limit; this keeps the text.
    """
    if state.level < DEEPEST_LEVEL or silent:
        return False
    lines = (
        state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]] for line in range(start, end)
    )
    token = state.push("too_deep", "", 0)
    token.content = "\n".join(line for line in lines if line)
    token.map = [start, end]
    state.line = end
    return True


@dataclass
class _Writer:
    colors: MarkdownColors
    env: dict[str, object]
    out: list[str] = field(default_factory=list)
    code_blocks: list[str] = field(default_factory=list)
    budget: int = SHOWN_CHARS
    closers: list[str] = field(default_factory=list)
    hidden_rows: int = 0
    columns: int = 0
    table_columns: int = 0
    skip_to: str = ""
    """While set, tokens are left out up to and including the next one of this type."""
    first_block: bool = True
    cut: bool = False
    """Some of the message is left out (past the budget): a note says so."""

    # Blocks ---------------------------------------------------------------------------------

    def blocks(self, tokens: list[Token]) -> None:
        for token in tokens:
            if self.budget <= 0 and token.nesting >= 0:
                self.cut = True
                break
            if self.skip_to:
                self.skip_to = "" if token.type == self.skip_to else self.skip_to
                continue
            handler = self._BLOCKS.get(token.type)
            if handler is not None:
                handler(self, token)  # an opening handler pushes exactly one closer
            elif token.nesting == 1:
                self.closers.append("")
            elif token.nesting == -1:
                self.out.append(self.closers.pop())
        self.out.extend(reversed(self.closers))
        if self.cut:
            self.out.append(
                f'<p style="color:{self.colors.muted}"><i>The rest of this message is too long to show '
                "here; Copy and Edit have all of it.</i></p>"
            )

    def _open(self, tag: str, style: str = "", attrs: str = "") -> None:
        if self.first_block:
            style = f"{style}; margin-top:0" if style else "margin-top:0"
            self.first_block = False
        self.out.append(f'<{tag}{attrs} style="{style}">' if style else f"<{tag}{attrs}>")
        self.closers.append(f"</{tag}>")

    def _paragraph(self, token: Token) -> None:
        if token.hidden:  # a tight list's paragraph: no block of its own
            self.closers.append("")
        else:
            self._open("p", "margin-top:8px; margin-bottom:0")

    def _heading(self, token: Token) -> None:
        size = _HEADING_SIZES.get(token.tag, "medium")
        self._open("p", f"font-size:{size}; font-weight:600; margin-top:10px; margin-bottom:0")

    def _list(self, token: Token) -> None:
        start = token.attrGet("start")
        self._open(token.tag, "margin-top:4px; margin-bottom:0", f' start="{start}"' if start else "")

    def _blockquote(self, token: Token) -> None:
        # Qt's rich text draws no border beside a block: a thin coloured cell is the quote's bar.
        top = "0" if self.first_block else "8px"
        self.out.append(
            f'<table cellspacing="0" cellpadding="0" style="margin-top:{top}; margin-bottom:0"><tr>'
            f'<td width="3" bgcolor="{self.colors.border}"></td>'
            f'<td style="padding-left:10px; color:{self.colors.muted}">'
        )
        self.closers.append("</td></tr></table>")
        self.first_block = True  # the quote's first paragraph starts at the bar's top

    def _code(self, token: Token) -> None:
        code = token.content[:-1] if token.content.endswith("\n") else token.content
        language = token.info.strip().split(" ")[0] if token.info else ""
        block, shown = code_block_html(code, language, len(self.code_blocks), self.colors.code)
        self.code_blocks.append(code)
        self.out.append(block)
        self.budget -= shown
        self.first_block = False

    def _rule(self, token: Token) -> None:
        self.out.append("<hr>")

    def _deep_lines(self, token: Token) -> None:
        lines: list[str] = []
        for line in token.content.split("\n"):
            if self.budget <= 0:
                self.cut = True
                break
            lines.append(_escape(self.spend(line)))
            self.budget -= LINE_COST
        self.out.append(f"<p>{'<br>'.join(lines)}</p>")

    def spend(self, text: str) -> str:
        """As much of ``text`` as the budget allows (all of it, or a cut and a note at the end)."""
        shown = text[: max(0, self.budget)]
        self.budget -= len(text)
        self.cut = self.cut or len(shown) < len(text)
        return shown

    def _inline(self, token: Token) -> None:
        source = token.content[: self.budget + INLINE_SLACK]
        self.cut = self.cut or len(source) < len(token.content)
        children = _parser().inline.parse(source, _parser(), self.env, [])
        self.out.append(_Inline(self).render(children))

    # Tables: the first rows and columns, and a note of the rest -------------------------------

    def _table(self, token: Token) -> None:
        self.table_columns = 0
        self.hidden_rows = int(token.meta.get("hidden_rows", 0))
        self._open(
            "table",
            f"border-color:{self.colors.border}; margin-top:6px; margin-bottom:6px",
            ' border="1" cellspacing="0" cellpadding="4"',
        )

    def _row(self, token: Token) -> None:
        self.columns = 0
        self._open("tr")

    def _cell(self, token: Token) -> None:
        self.columns += 1
        self.table_columns = max(self.table_columns, self.columns)
        if self.columns > SHOWN_COLUMNS:
            self.skip_to = token.type.replace("_open", "_close")
            return
        self.budget -= CELL_COST
        align = token.attrGet("style")
        self._open(token.tag, str(align) if align else "")

    def _table_end(self, token: Token) -> None:
        hidden = [
            _count(self.hidden_rows, "row"),
            _count(self.table_columns - SHOWN_COLUMNS, "column"),
        ]
        if any(hidden):
            note = f"… {' and '.join(part for part in hidden if part)} not shown"
            span = min(self.table_columns, SHOWN_COLUMNS)
            self.out.append(f'<tr><td colspan="{span}" style="color:{self.colors.muted}">{note}</td></tr>')
        self.out.append(self.closers.pop())

    _BLOCKS: ClassVar[dict[str, Callable[[_Writer, Token], None]]] = {
        "paragraph_open": _paragraph,
        "heading_open": _heading,
        "bullet_list_open": _list,
        "ordered_list_open": _list,
        "list_item_open": lambda self, token: self._open("li"),
        "blockquote_open": _blockquote,
        "fence": _code,
        "code_block": _code,
        "hr": _rule,
        "too_deep": _deep_lines,
        "inline": _inline,
        "table_open": _table,
        "tr_open": _row,
        "th_open": _cell,
        "td_open": _cell,
        "table_close": _table_end,
    }


def _count(number: int, noun: str) -> str:
    return f"{number:,} more {noun}{'' if number == 1 else 's'}" if number > 0 else ""


class _Inline:
    """One paragraph's (or cell's, or heading's) text and its inline markup."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.colors = writer.colors
        self.out: list[str] = []
        self.speech: deque[tuple[int, int]] = deque()
        self.offset = 0  # where the next text token starts in the paragraph's text
        self.in_action = False  # inside *an action*: its own colour, even within "speech"

    def render(self, children: list[Token]) -> str:
        self.speech = deque(_speech_ranges([c.content for c in children if c.type in _TEXT]))
        closers: list[str] = []  # of the open emphasis and links, so a cut paragraph stays well-formed
        for child in children:
            if self.writer.budget <= 0 and child.nesting >= 0:
                self.writer.cut = True
                break
            if child.tag == "em":
                self.in_action = child.nesting == 1
            if child.nesting == 1:
                self.writer.budget -= FORMAT_COST
                self.out.append(self._opening(child))
                closers.append(_CLOSERS.get(child.tag, ""))
            elif child.nesting == -1:
                self.out.append(closers.pop())
            elif child.type in _TEXT:
                self._text(child)
            elif child.type == "code_inline":
                self._code(child)
            elif child.type in ("softbreak", "hardbreak"):
                self.writer.budget -= LINE_COST
                self.out.append("<br>")
            elif child.type == "image":
                self._image(child)
        self.out.extend(reversed(closers))
        return "".join(self.out)

    def _opening(self, token: Token) -> str:
        if token.tag == "em":
            return f'<i><span style="color:{self.colors.action}">'
        if token.tag == "a":
            href = html.escape(str(token.attrGet("href") or ""), quote=True)
            return f'<a href="{href}" style="color:{self.colors.link}">'
        return f"<{token.tag}>" if token.tag in _CLOSERS else ""

    def _text(self, token: Token) -> None:
        text = self.writer.spend(token.content)
        start, end = self.offset, self.offset + len(text)
        self.offset += len(token.content)
        position = start
        while self.speech and self.speech[0][1] <= start:  # ranges behind this text are done
            self.speech.popleft()
        for speech_start, speech_end in [] if self.in_action else self.speech:
            if speech_start >= end or self.writer.budget <= 0:  # past the budget: plain text
                break
            self.out.append(_escape(text[position - start : max(position, speech_start) - start]))
            inside = text[max(position, speech_start) - start : min(end, speech_end) - start]
            self.out.append(f'<span style="color:{self.colors.speech}">{_escape(inside)}</span>')
            self.writer.budget -= FORMAT_COST
            position = min(end, speech_end)
        self.out.append(_escape(text[position - start :]))

    def _code(self, token: Token) -> None:
        code = _escape(self.writer.spend(token.content))
        self.out.append(
            f'<code style="background-color:{self.colors.code_background}">&nbsp;{code}&nbsp;</code>'
        )

    def _image(self, token: Token) -> None:
        """Not loaded (a message must not read local files or the network): a link to it."""
        href = html.escape(str(token.attrGet("src") or ""), quote=True)
        alt = _escape(token.content or "image")
        self.out.append(f'<a href="{href}" style="color:{self.colors.link}">[image: {alt}]</a>')


def _speech_ranges(texts: list[str]) -> list[tuple[int, int]]:
    """Where "speech" is in a paragraph's text, quotes included: (start, end) offsets into the
    text tokens laid end to end.  Straight quotes pair up in turn, curly ones open and close;
    a quote left open at the end of the paragraph colours nothing."""
    ranges: list[tuple[int, int]] = []
    opened: tuple[int, str] | None = None
    offset = 0
    for text in texts:
        for match in _SPEECH.finditer(text):
            mark, position = match.group(), offset + match.start()
            if opened is None:
                if mark != "”":
                    opened = (position, mark)
            elif mark == ("”" if opened[1] == "“" else '"'):
                ranges.append((opened[0], position + 1))
                opened = None
        offset += len(text)
    return ranges


def _escape(text: str) -> str:
    return html.escape(text, quote=False)
