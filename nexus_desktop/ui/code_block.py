"""A code block in a chat message: Pygments colours as inline styles, a header with its language
and a Copy link, and a cap on what is laid out.

Qt-free (it runs on a worker thread for long messages).  Only the first lines of a long block
are shown, so a 1 MB paste costs what a short one does; the block's Copy link still copies all
of it, and the note under the block says how much is not shown.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.lexers.special import TextLexer
from pygments.styles import get_style_by_name
from pygments.token import Token, _TokenType
from pygments.util import ClassNotFound

SHOWN_LINES = 80
SHOWN_CHARS = 6_000
COPY_SCHEME = "nexus-copy"
"""Links ``nexus-copy:N`` copy the message's N-th code block; markdown links never get this scheme."""

# Pygments styles that sit well on the app's dark and light palettes.
DARK_STYLE = "one-dark"
LIGHT_STYLE = "xcode"


@dataclass(frozen=True)
class CodeColors:
    background: str
    muted: str
    link: str
    dark: bool


def code_block_html(code: str, language: str, index: int, colors: CodeColors) -> tuple[str, int]:
    """The block as a one-column table, and how many characters of it are laid out."""
    shown, hidden_lines = _visible_part(code)
    spans = _highlight(shown, language, DARK_STYLE if colors.dark else LIGHT_STYLE)
    label = html.escape(language) if language else "code"
    note = ""
    if hidden_lines:
        note = (
            f'<br>&nbsp;<span style="color:{colors.muted}">… {hidden_lines:,} more '
            f"{'line' if hidden_lines == 1 else 'lines'} not shown; Copy copies the whole block.</span>"
        )
    # Paragraphs with a background, not a table: Qt lays tables out several times slower.  Qt's
    # blocks have no padding, so a space starts each line and an empty line closes the block.
    box = f"background-color:{colors.background}; margin-left:0; margin-right:0"
    block = (
        f'<p style="{box}; margin-top:8px; margin-bottom:0; font-size:small">'
        f'&nbsp;<span style="color:{colors.muted}">{label}</span>&nbsp;&nbsp;·&nbsp;&nbsp;'
        f'<a href="{COPY_SCHEME}:{index}" style="color:{colors.link}; text-decoration:none">Copy</a></p>'
        f'<pre style="{box}; white-space:pre-wrap; margin-top:0; margin-bottom:0">&nbsp;{spans}{note}</pre>'
        f'<p style="{box}; margin-top:0; margin-bottom:8px; font-size:4pt">&nbsp;</p>'
    )
    return block, len(shown)


def _visible_part(code: str) -> tuple[str, int]:
    """The first lines of ``code`` (within both caps) and how many lines are left out."""
    cut = len(code)
    newline = -1
    for _ in range(SHOWN_LINES):
        newline = code.find("\n", newline + 1)
        if newline < 0:
            break
    if newline >= 0:
        cut = newline
    cut = min(cut, SHOWN_CHARS)
    if cut >= len(code):
        return code, 0
    hidden = code.count("\n", cut) + 1
    return code[:cut], hidden


def _highlight(code: str, language: str, style_name: str) -> str:
    """Pygments tokens as spans with inline styles; neighbours with the same style share one."""
    styles = _token_styles(style_name)
    parts: list[str] = []
    run: list[str] = []
    run_style = ""
    for token_type, value in _lexer(language).get_tokens(code):
        style = styles.get(token_type)
        if style is None:
            style = styles[token_type] = _css(style_name, token_type)
        if style != run_style and run:
            parts.append(_span(run_style, "".join(run)))
            run = []
        run_style = style
        run.append(value)
    parts.append(_span(run_style, "".join(run)))
    return "".join(parts)


def _span(style: str, text: str) -> str:
    text = html.escape(text, quote=False).replace("\n", "\n&nbsp;")
    return f'<span style="{style}">{text}</span>' if style and text else text


@functools.lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer:
    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False) if language else TextLexer()
    except ClassNotFound:
        return TextLexer()


@functools.lru_cache(maxsize=4)
def _token_styles(style_name: str) -> dict[_TokenType, str]:
    return {}


def _css(style_name: str, token_type: _TokenType) -> str:
    """The token's colour and weight; plain text keeps the message's own colour."""
    if token_type in Token.Text:
        return ""
    style = get_style_by_name(style_name).style_for_token(token_type)
    parts = []
    if style["color"]:
        parts.append(f"color:#{style['color']}")
    if style["bold"]:
        parts.append("font-weight:bold")
    if style["italic"]:
        parts.append("font-style:italic")
    return "; ".join(parts)
