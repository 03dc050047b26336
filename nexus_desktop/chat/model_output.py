"""What one model call gave back, made ready to save: the speaker's name taken off, the figures
as a message stores them, and the tokens reserved for the call, to settle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexus_desktop.control.governor import TokenGrant
from nexus_desktop.llm.contract import ChatOutput


@dataclass(frozen=True)
class Generated:
    """A model call's finished output, with the tokens reserved for it (to settle)."""

    output: ChatOutput
    grant: TokenGrant

    @property
    def budget_cut(self) -> bool:
        """The daily token budget lowered the reply's cap, and the reply ran to it."""
        return self.grant.cut and self.output.stats.finish_reason == "length"


def strip_speaker(text: str, name: str) -> str:
    """Small models often open with "Vega:"; the bubble already says who speaks."""
    text = text.strip()
    prefix = f"{name}:"
    return text[len(prefix) :].lstrip() if text.startswith(prefix) else text


def streamed_reply(text: str, speaker: str) -> str:
    """What to show of a reply being written: without the "Vega:" the saved reply loses
    (``strip_speaker``), and nothing while only the start of it ("Ve") is in."""
    head = text.lstrip()
    prefix = f"{speaker}:"
    if len(head) < len(prefix) and prefix.startswith(head):
        return ""
    return strip_speaker(text, speaker)


class PrintedReply:
    """A streamed reply printed piece by piece (the CLI), without the speaker prefix that
    ``streamed_reply`` hides: ``add`` returns only what is new to print."""

    def __init__(self, speaker: str) -> None:
        self.speaker = speaker
        self._text = ""
        self._printed = ""

    def add(self, piece: str) -> str:
        self._text += piece
        shown = streamed_reply(self._text, self.speaker)
        if not shown.startswith(self._printed):
            return ""  # e.g. trailing spaces held back by the strip: printed once text follows them
        new, self._printed = shown[len(self._printed) :], shown
        return new


def stats_record(output: ChatOutput, model: str) -> dict[str, Any]:
    s = output.stats
    return {
        "model": model,
        "tokens_per_second": round(s.tokens_per_second, 2),
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "context_used": s.context_used,
        "context_size": s.context_size,
        "seconds": round(s.seconds, 3),
        "first_token_seconds": round(s.first_token_seconds, 3),
        "finish_reason": s.finish_reason,
        **({"served_by": output.served_by} if output.served_by else {}),
    }
