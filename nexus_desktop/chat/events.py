"""What a reply tells its caller as it runs: the window, the CLI and the tests read these events.

``chat.service`` re-exports them, so callers keep importing from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexus_desktop.chat.tools import ToolOutcome
from nexus_desktop.db.tables import Message
from nexus_desktop.llm.contract import ChatOutput


@dataclass(frozen=True)
class UserMessageSaved:
    message: Message


@dataclass(frozen=True)
class HistoryTrimmed:
    dropped: int

    @property
    def notice(self) -> str:
        noun = "message" if self.dropped == 1 else "messages"
        return (
            f"The {self.dropped} oldest {noun} no longer fit the model's context and were left out "
            "of this reply. They are still saved here."
        )


@dataclass(frozen=True)
class ReplyToken:
    text: str


@dataclass(frozen=True)
class ReplySaved:
    message: Message
    output: ChatOutput


@dataclass(frozen=True)
class ToolCalled:
    """A tool ran before the reply; ``message`` is the saved ``tool`` message (its ``stats`` hold
    the ``ToolRecord`` as a dict: tool, arguments, via, ok, result, error, seconds)."""

    name: str
    arguments: dict[str, Any]
    result: ToolOutcome
    message: Message


@dataclass(frozen=True)
class GovernorNotice:
    """The governor limited this reply; ``text`` is one or two sentences for the chat to show.

    ``kind``: ``budget_spent`` (no reply: the daily token budget was used up before it),
    ``budget_reached`` (the reply was cut short by the budget and saved as far as it got),
    ``prerequisite`` (a tool was refused: its prerequisite tools were not used in this chat),
    ``tool_unavailable`` (the tool the user asked for is cooling down or today's tool calls are
    used up), ``policy_unreadable`` (the stored policy could not be read; no limits applied).
    """

    kind: str
    text: str


@dataclass(frozen=True)
class Impersonated:
    """Impersonate's result: the user's next message as the model wrote it in their persona's
    voice, for the message box; never saved."""

    text: str
    output: ChatOutput


@dataclass(frozen=True)
class SpeakerChosen:
    """In a group chat: the member who writes the reply whose tokens and ``ReplySaved`` follow."""

    character_id: int
    name: str


@dataclass(frozen=True)
class BuildStarted:
    """The intent router said ``build_module``: the request went to the module builder instead of
    the model.  ``message`` is the saved ``tool`` message whose ``stats["build"]["build_id"]``
    names the build (the chat shows it as a build card, rebuilt from the stored build)."""

    build_id: int
    message: Message


ChatEvent = (
    UserMessageSaved
    | BuildStarted
    | HistoryTrimmed
    | ToolCalled
    | ReplyToken
    | ReplySaved
    | GovernorNotice
    | Impersonated
    | SpeakerChosen
)
