"""What the chat reports (signals) and what the loop learns from (typed examples).

Signals are plain frozen dataclasses so the caller builds one in a microsecond; turning them into
examples, filtering and hashing happens later on the collector's writer thread.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Turn = tuple[str, str]
"""(role, content) with role system, user, assistant or tool."""

ExampleKind = Literal["sft", "preference", "classification"]


# Signals from the app ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplySaved:
    character: str
    context: Sequence[Turn]
    """The prompt's turns (system, user, assistant...) before the reply."""
    reply: str


@dataclass(frozen=True)
class ReplyRated:
    character: str
    context: Sequence[Turn]
    reply: str
    thumbs_up: bool
    corrected: str | None = None
    """The reply the user wrote instead, when they rated it down and fixed it."""


@dataclass(frozen=True)
class ReplyEdited:
    character: str
    context: Sequence[Turn]
    original: str
    edited: str


@dataclass(frozen=True)
class SwipeChosen:
    """The user regenerated and settled on one alternative: it beats the ones they passed over."""

    character: str
    context: Sequence[Turn]
    chosen: str
    rejected: Sequence[str]


@dataclass(frozen=True)
class ToolCalled:
    text: str
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    succeeded: bool = True


@dataclass(frozen=True)
class RouteDecided:
    text: str
    label: str
    confirmed: bool = True
    corrected_label: str | None = None


@dataclass(frozen=True)
class ModuleBuilt:
    """A module build whose tests passed (``builder/loop.py``): the request and the files."""

    request: Sequence[Turn]
    """The generate prompt's turns (system, user)."""
    files: str
    """The answer that passed, as the files JSON."""


Signal = ReplySaved | ReplyRated | ReplyEdited | SwipeChosen | ToolCalled | RouteDecided | ModuleBuilt

IMPORTED = "imported"
"""The signal of an example the user imported (``training.importer``): every zoo model trains on
its own imported examples, whatever signals it learns from."""


# Examples -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    dataset: str
    kind: ExampleKind
    signal: str
    payload: dict[str, Any]
    """sft: {"messages": [...]}; preference: {"prompt": [...], "chosen", "rejected"};
    classification: {"text", "label"}."""

    def payload_json(self) -> str:
        return json.dumps(self.payload, ensure_ascii=False)  # payloads are built in one fixed key order

    def content_hash(self, payload_json: str | None = None) -> str:
        """128 bits of BLAKE2b over dataset, kind and payload: enough to tell examples apart, and
        short keys keep the unique index fast.  The signal is left out on purpose: the same example
        from two signals is one example."""
        blob = f"{self.dataset}\n{self.kind}\n{payload_json or self.payload_json()}"
        return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).hexdigest()


def persona_dataset(character: str) -> str:
    return f"persona:{character}"


ROUTER_DATASET = "router"
QUALITY_DATASET = "reply_quality"
TOOLS_DATASET = "tool_dispatch"
CODEGEN_DATASET = "module_builder"


def _messages(context: Sequence[Turn], reply: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": role, "content": content} for role, content in context]
    if reply is not None:
        messages.append({"role": "assistant", "content": reply})
    return messages


def _sft(dataset: str, signal: str, context: Sequence[Turn], reply: str) -> Example:
    return Example(dataset, "sft", signal, {"messages": _messages(context, reply)})


def _preference(dataset: str, signal: str, context: Sequence[Turn], chosen: str, rejected: str) -> Example:
    payload = {"prompt": _messages(context), "chosen": chosen, "rejected": rejected}
    return Example(dataset, "preference", signal, payload)


def _quality(signal: str, reply: str, good: bool) -> Example:
    return Example(
        QUALITY_DATASET, "classification", signal, {"text": reply, "label": "good" if good else "bad"}
    )


def examples_from(signal: Signal) -> list[Example]:
    """The examples a signal teaches; an uninformative signal teaches none."""
    if isinstance(signal, ReplySaved):
        return [_sft(persona_dataset(signal.character), "reply_saved", signal.context, signal.reply)]
    if isinstance(signal, ReplyRated):
        persona = persona_dataset(signal.character)
        if signal.thumbs_up:
            return [
                _sft(persona, "thumbs_up", signal.context, signal.reply),
                _quality("thumbs_up", signal.reply, good=True),
            ]
        found = [_quality("thumbs_down", signal.reply, good=False)]
        if signal.corrected and signal.corrected.strip() != signal.reply.strip():
            found.append(_sft(persona, "correction", signal.context, signal.corrected))
            found.append(_preference(persona, "correction", signal.context, signal.corrected, signal.reply))
        return found
    if isinstance(signal, ReplyEdited):
        if signal.edited.strip() == signal.original.strip():
            return []
        persona = persona_dataset(signal.character)
        return [
            _sft(persona, "edit", signal.context, signal.edited),
            _preference(persona, "edit", signal.context, signal.edited, signal.original),
        ]
    if isinstance(signal, SwipeChosen):
        persona = persona_dataset(signal.character)
        return [
            _preference(persona, "swipe", signal.context, signal.chosen, rejected)
            for rejected in signal.rejected
            if rejected.strip() != signal.chosen.strip()
        ]
    if isinstance(signal, ToolCalled):
        if not signal.succeeded:
            return []
        return [
            Example(TOOLS_DATASET, "classification", "tool_call", {"text": signal.text, "label": signal.tool})
        ]
    if isinstance(signal, ModuleBuilt):
        return [_sft(CODEGEN_DATASET, "module_built", signal.request, signal.files)]
    if isinstance(signal, RouteDecided):
        if signal.confirmed:
            payload = {"text": signal.text, "label": signal.label}
            return [Example(ROUTER_DATASET, "classification", "route_confirmed", payload)]
        if signal.corrected_label:
            payload = {"text": signal.text, "label": signal.corrected_label}
            return [Example(ROUTER_DATASET, "classification", "route_corrected", payload)]
        return []
    return []


# Quality filter --------------------------------------------------------------------------------

MIN_REPLY_CHARS = 2
MAX_TEXT_CHARS = 8000
MAX_CODE_CHARS = 64_000
"""A generated module's files (the whole answer) are longer than any chat reply."""


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")
_NOT_ALNUM = re.compile(r"[\W_]+")


def _looks_like_garbage(text: str) -> bool:
    if _CONTROL.search(text):
        return True
    stripped = text.strip()
    if len(stripped) >= 12:
        if len(_NOT_ALNUM.sub("", stripped)) / len(stripped) < 0.3:
            return True
        # A token loop ("aaaaaaaa...", "the the the the ..."): very few distinct characters or words.
        if len(set(stripped)) <= 2:
            return True
        words = stripped.split()
        if len(words) >= 8 and len(set(words)) / len(words) < 0.2:
            return True
    return False


def rejection_reason(example: Example) -> str | None:
    """Why the example is not worth learning from (empty, too_short, too_long, garbage), or None."""
    payload = example.payload
    if example.kind == "sft":
        texts = [payload["messages"][-1]["content"]]
    elif example.kind == "preference":
        texts = [payload["chosen"], payload["rejected"]]
    else:
        texts = [payload["text"], payload["label"]]
    for text in texts:
        if not text or not text.strip():
            return "empty"
        if len(text.strip()) < MIN_REPLY_CHARS:
            return "too_short"
        if len(text) > (MAX_CODE_CHARS if example.dataset == CODEGEN_DATASET else MAX_TEXT_CHARS):
            return "too_long"
        if _looks_like_garbage(text):
            return "garbage"
    return None
