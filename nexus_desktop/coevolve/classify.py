"""Which kind of difficulty a failed build ran into, from its last error.

The categories are the ones the curriculum aims at: pagination, auth refresh, rate limits,
retries and parsing.  The error text (test output, a traceback line) is read first; when it says
nothing telling (a plain ``assert``), the request's own words decide.  An error that belongs to
none of them (a syntax error, a model that wrote no JSON) is ``None``: no curriculum helps a
model that cannot write the answer's format, and counting it would skew the rest.
"""

from __future__ import annotations

import re
from typing import Literal

Category = Literal["pagination", "auth_refresh", "rate_limits", "retries", "parsing"]
CATEGORIES: tuple[Category, ...] = ("pagination", "auth_refresh", "rate_limits", "retries", "parsing")

# Most specific first: a 429 is a rate limit before it is a retry, an expired token is auth
# before it is an HTTP error.
_SOURCES: tuple[tuple[Category, str], ...] = (
    ("rate_limits", r"\b429\b|too many requests|rate[- ]?limit|retry-after|quota exceeded|throttl"),
    (
        "auth_refresh",
        r"\b401\b|unauthori[sz]ed|\b403\b|forbidden|token (?:has )?expired|expired token|"
        r"invalid[_ ]token|refresh[_ ]token|access[_ ]token|bearer|api[_ ]key",
    ),
    (
        "retries",
        r"\b50[234]\b|service unavailable|bad gateway|gateway timeout|timed? ?out|"
        r"connection (?:reset|refused|aborted)|remotedisconnected|urlerror|\bretr(?:y|ies|ied)\b|backoff",
    ),
    (
        "pagination",
        r"next_page|next_cursor|\bcursor\b|\bpage(?:s|d|_?size)?\b|per_page|offset|pagination",
    ),
    (
        "parsing",
        r"jsondecodeerror|json\.decoder|expecting value|could not convert|invalid literal|"
        r"unicodedecodeerror|csv\.error|configparser|tomldecodeerror|\bparse|unterminated|"
        r"\bregex\b|re\.error|strptime|does not match format",
    ),
)
_PATTERNS = tuple((category, re.compile(pattern, re.IGNORECASE)) for category, pattern in _SOURCES)

# A test run that says nothing telling: these mark an error as "the code ran and was wrong",
# so the request's words may decide the category.
_UNTELLING = re.compile(
    r"assert|expected|!=|==|keyerror|typeerror|indexerror|valueerror|attributeerror", re.I
)
# These mark an error as outside every category, whatever the request says.
_NOT_A_CATEGORY = re.compile(
    r"syntaxerror|indentationerror|does not compile|not valid json|no files|is empty|"
    r"manifest is for the module|modulenotfounderror|importerror|no \S+ in the answer",
    re.IGNORECASE,
)


def classify(error: str, description: str = "") -> Category | None:
    """The category of a failed build's last ``error`` (its request's ``description`` helps
    when the error is a plain assertion), or None when it is none of them."""
    if _NOT_A_CATEGORY.search(error):
        return None
    found = _match(error)
    if found is not None or not _UNTELLING.search(error):
        return found
    return _match(description)


def _match(text: str) -> Category | None:
    for category, pattern in _PATTERNS:
        if pattern.search(text):
            return category
    return None
