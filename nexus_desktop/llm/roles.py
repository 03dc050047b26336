"""Conversation shapes for strict chat templates.

A chat prompt as the app builds it may open with the character's greeting (an assistant turn)
and carry system messages inside the chat (lore at a depth, post-history instructions).  Many
models accept that; others' chat templates refuse it: Mistral's insist that user and assistant
alternate after one optional system message, Gemma 2's refuse the system role altogether.  When
a template refuses, the same conversation is retried in the stricter shapes below, which keep
every word and only move it: SillyTavern's "squash system messages" does the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

Messages = list[dict[str, Any]]
CHAT_OPENER = "[Start a new chat]"
"""The user turn put before a conversation that opens with the character speaking."""


def as_given(messages: Sequence[dict[str, Any]]) -> Messages:
    return [dict(message) for message in messages]


def alternating(messages: Sequence[dict[str, Any]]) -> Messages:
    """One leading system message, then turns that alternate, starting with the user's.

    Later system messages join the user's side (their words reach the model where they were);
    neighbouring turns of one role are joined.
    """
    system = _leading_system(messages)
    turns: Messages = []
    for message in messages[len(system) :]:
        role = "assistant" if message.get("role") == "assistant" else "user"
        content = str(message.get("content") or "")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = _join(turns[-1]["content"], content)
        else:
            turns.append({"role": role, "content": content})
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": CHAT_OPENER})
    head = [{"role": "system", "content": _join(*(str(m.get("content") or "") for m in system))}]
    return (head if system else []) + turns


def without_system_role(messages: Sequence[dict[str, Any]]) -> Messages:
    """``alternating``, with the system text opening the first user turn instead."""
    shaped = alternating(messages)
    if not shaped or shaped[0]["role"] != "system":
        return shaped
    system, rest = shaped[0]["content"], shaped[1:]
    if not rest:
        return [{"role": "user", "content": system}]
    rest[0] = {"role": "user", "content": _join(system, rest[0]["content"])}
    return rest


SHAPES: tuple[Callable[[Sequence[dict[str, Any]]], Messages], ...] = (
    as_given,
    alternating,
    without_system_role,
)
"""Tried in this order; a model keeps the first shape its template accepts."""


def shapes_from(start: int, messages: Sequence[dict[str, Any]]) -> Iterator[tuple[int, Messages]]:
    """``(index, shaped)`` for each shape from ``SHAPES[start]`` on, skipping any that would send
    the same messages as the one before it (nothing to retry)."""
    previous: Messages | None = None
    for index in range(start, len(SHAPES)):
        shaped = SHAPES[index](messages)
        if shaped != previous:
            yield index, shaped
        previous = shaped


def _leading_system(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    leading = []
    for message in messages:
        if message.get("role") != "system":
            break
        leading.append(message)
    return leading


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part)
