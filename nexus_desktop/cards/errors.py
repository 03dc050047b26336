"""The one error a user can hit when importing or exporting a character card, and the limits behind it."""

from __future__ import annotations

# A real card, avatar included, is a few MB at most; anything this large is not a card.
MAX_FILE_BYTES = 64 * 1024 * 1024
# A whole novel is ~500,000 characters; one field beyond this would only fill the model's context.
MAX_TEXT_CHARS = 1_000_000


class CardError(ValueError):
    """A card could not be read or written; ``str()`` is one sentence saying what to do."""


def describe_size(n_bytes: int) -> str:
    return f"{n_bytes / (1024 * 1024):.1f} MB"
