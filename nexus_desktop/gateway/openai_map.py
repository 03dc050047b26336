"""OpenAI's chat-completion bodies to the model contract, and the contract's output back.

Only what a chat needs is read: the model, the messages (text, or text parts), ``stream``, and
the samplers OpenAI names (temperature, top_p, max_tokens / max_completion_tokens, stop, seed,
presence and frequency penalties).  Everything else a client sends (``n``, ``logprobs``, tools)
is ignored, as LM Studio does.  A malformed body gets a 400 whose sentence names the field.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from nexus_desktop.gateway.http import HttpError
from nexus_desktop.llm.contract import ChatMessage, ChatOutput, Role, SamplingSettings

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",  # OpenAI's newer name for the system role
    "user": "user",
    "assistant": "assistant",
}
_FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}
MAX_STOPS = 4
"""OpenAI's limit on stop sequences."""


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    stream: bool
    body: dict[str, Any]
    """The whole request, for ``sampling``."""


def bad(message: str, param: str = "") -> HttpError:
    return HttpError(400, message, code="invalid_request", param=param)


def parse_request(body: Any) -> CompletionRequest:
    """Read a ``/v1/chat/completions`` body; raises a 400 ``HttpError`` naming the bad field."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object with 'model' and 'messages'.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad("The request has no 'model'; GET /v1/models lists the ones NEXUS serves.", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("The request has no 'messages'; send a list of {role, content} messages.", "messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("'stream' must be true or false.", "stream")
    return CompletionRequest(
        model.strip(), tuple(_message(m, i) for i, m in enumerate(messages)), stream, body
    )


def _message(item: Any, index: int) -> ChatMessage:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise bad(f"{where} must be an object with 'role' and 'content'.", "messages")
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise bad(f"{where} has role {item.get('role')!r}; use system, user or assistant.", "messages")
    content = item.get("content")
    if content is None:
        content = ""  # an assistant message that only called tools
    if isinstance(content, list):  # the "parts" form: keep the text parts
        content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise bad(f"{where}.content must be text.", "messages")
    return ChatMessage(role, content)


def sampling(body: dict[str, Any], base: SamplingSettings) -> SamplingSettings:
    """``base`` (the app's sampler settings) with the request's OpenAI samplers over it."""
    changes: dict[str, Any] = {}
    for name, low, high in (
        ("temperature", 0.0, 2.0),
        ("top_p", 0.0, 1.0),
        ("presence_penalty", -2.0, 2.0),
        ("frequency_penalty", -2.0, 2.0),
    ):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise bad(f"'{name}' must be a number from {low:g} to {high:g}.", name)
        changes[name] = float(value)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise bad("'max_tokens' must be a whole number of at least 1.", "max_tokens")
        changes["max_tokens"] = limit
    seed = body.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise bad("'seed' must be a whole number.", "seed")
        changes["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or not all(isinstance(s, str) for s in stops)
            or len(stops) > MAX_STOPS
        ):
            raise bad(f"'stop' must be a string or a list of at most {MAX_STOPS} strings.", "stop")
        changes["stop"] = tuple(s for s in stops if s)
    return replace(base, **changes)


# Answers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """One answer's identity, shared by its chunks."""

    model: str
    id: str = ""
    created: int = 0

    @staticmethod
    def new(model: str) -> Completion:
        return Completion(model, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()))

    def whole(self, output: ChatOutput) -> dict[str, Any]:
        """The non-streamed answer."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": output.text},
                    "finish_reason": _FINISH[output.stats.finish_reason],
                }
            ],
            "usage": usage(output),
        }

    def chunk(self, delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        """One streamed chunk: a piece of the reply (``delta``), or the last one with ``finish``."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def last_chunk(self, output: ChatOutput) -> dict[str, Any]:
        chunk = self.chunk({}, _FINISH[output.stats.finish_reason])
        chunk["usage"] = usage(output)
        return chunk


def usage(output: ChatOutput) -> dict[str, int]:
    prompt, completion = output.stats.prompt_tokens, output.stats.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def models_list(ids: list[str], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": created, "owned_by": "nexus"} for name in ids],
    }
