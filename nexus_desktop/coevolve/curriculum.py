"""Harder module requests aimed at the kinds of failure the builder meets, and the advice a
candidate template adds for each kind.

Requests climb in three levels per category; a step takes the next level up from the hardest
one already tried for that category, so the curriculum keeps pace with the builder.  They name
``api.example.com``-style hosts: validation runs a module's own tests without network, so what
is measured is whether the model writes code and tests that handle the difficulty.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from nexus_desktop.coevolve.classify import CATEGORIES, Category


@dataclass(frozen=True)
class Proposal:
    category: Category
    level: int
    description: str


REQUESTS: dict[Category, tuple[str, ...]] = {
    "pagination": (
        "A tool that lists every repository name of a user from https://api.example.com/users/NAME/repos"
        "?page=N, 30 per page, following pages until one comes back empty.",
        "A tool that totals the amount of every invoice from https://billing.example.com/invoices, "
        "whose JSON answer has items and a next_cursor (null on the last page) to pass as ?cursor=.",
        "A tool that collects all comments of a post from https://forum.example.com/posts/ID/comments, "
        "paged by a Link header with rel=next, stopping at 500 comments.",
    ),
    "auth_refresh": (
        "A tool that returns my profile name from https://id.example.com/me with the api_key credential "
        "sent as a Bearer token, saying clearly when the key is refused (401).",
        "A tool that lists my playlists from https://music.example.com/v1/me/playlists; it trades the "
        "api_key credential for an access token at POST /token and gets a new token when one expires (401).",
        "A tool that reads my calendar's next event from https://cal.example.com/events/next using an "
        "access token that expires after expires_in seconds: refresh it before it expires and once on a 401.",
    ),
    "rate_limits": (
        "A tool that looks up a word's definition at https://dict.example.com/define?word=W; on 429 it "
        "waits the Retry-After seconds once and tries again.",
        "A tool that fetches prices for a list of symbols from https://quotes.example.com/q?s=S, one "
        "request each, waiting Retry-After on 429 (up to 3 tries per symbol).",
        "A tool that downloads all pages of https://stats.example.com/daily?page=N where any page may answer "
        "429 with Retry-After in seconds or as an HTTP date; it keeps under 5 requests per second.",
    ),
    "retries": (
        "A tool that returns the status of https://status.example.com/api/status, retrying up to 3 times "
        "when it answers 503.",
        "A tool that posts a note to https://notes.example.com/api/notes, retrying with exponential backoff "
        "on 502, 503 and connection errors, but never on 4xx answers.",
        "A tool that syncs a to-do list from https://todo.example.com/api/items, retrying timeouts and 5xx "
        "answers with jittered backoff, giving up after 30 seconds in all with a clear error.",
    ),
    "parsing": (
        "A tool that reads a CSV text of expenses (date,category,amount) and returns the total per category.",
        "A tool that parses an iCalendar (.ics) text and returns each event's summary and start time "
        "in ISO form.",
        "A tool that reads an HTTP access log in the combined format and returns the 5 most requested "
        "paths with their counts, skipping malformed lines.",
    ),
}

HINTS: dict[Category, str] = {
    "pagination": (
        "Paged APIs: loop until the API says there is no next page (next_page or next_cursor null, an empty "
        "page, no rel=next link); never assume one page. Test with a fake fetch function that returns two "
        "pages and check both were read."
    ),
    "auth_refresh": (
        "Keys and tokens: read the key in startup from app_info['credentials']; raise a clear error when "
        "it is missing. On 401 get a new token once and retry once; never loop. Test with a fake fetch that "
        "refuses the first token."
    ),
    "rate_limits": (
        "Rate limits: on HTTP 429 wait the Retry-After seconds (default 1) and try again, a bounded number "
        "of times. Pass the sleep function in so tests record the waits instead of sleeping."
    ),
    "retries": (
        "Retries: retry only 5xx answers and connection errors, a bounded number of times with growing "
        "waits; re-raise 4xx at once. Pass the fetch and sleep functions in so tests script failures."
    ),
    "parsing": (
        "Parsing: use the standard library parsers (json, csv, configparser, datetime, re); skip or "
        "report malformed input with a clear error rather than crashing; test a malformed line too."
    ),
}


def weakest(categories: Counter[Category]) -> list[Category]:
    """Categories by how often builds failed on them, most first; every category when none did
    (the curriculum still has to start somewhere)."""
    if not categories:
        return list(CATEGORIES)
    return [category for category, _ in categories.most_common()]


def propose(category: Category, tried: Counter[Category], count: int) -> list[Proposal]:
    """``count`` requests aimed at ``category``, from the level after the ones already tried
    (``tried``: how many of its requests earlier steps built), the hardest level repeating."""
    ladder = REQUESTS[category]
    start = min(tried[category], len(ladder) - 1)
    picks = [min(start + offset, len(ladder) - 1) for offset in range(count)]
    return [Proposal(category, level + 1, ladder[level]) for level in picks]
