"""Reading an OpenAI-compatible reply: Server-Sent Event lines, their JSON chunks, or one whole
JSON body from a server that ignores ``stream``.

Errors a server sends in place of data (an ``error:`` line, an error object in a chunk, a JSON
error page where events should be) become a ``RemoteServerError`` with the server's words.
"""

from __future__ import annotations

import json
from typing import Any

from nexus_desktop.llm.contract import FinishReason, RemoteServerError
from nexus_desktop.llm.openai_errors import SETTINGS_HINT, server_message


def finish_reason(raw: object) -> FinishReason:
    return "length" if raw == "length" else "stop"


def sse_data(base_url: str, line: str) -> str | None:
    """The payload of a ``data:`` line; None for blank, comment, ``event:`` and ``id:`` lines."""
    if line.startswith("error:"):
        # llama.cpp's own server reports failures mid-stream as ``error: {json}``.
        parse_chunk(base_url, json.dumps({"error": server_message(line[6:].strip().encode())}))
    if not line.startswith("data:"):
        if line.strip() and not line.startswith((":", "event:", "id:", "retry:")):
            # A JSON error body where events should be, e.g. a proxy's error page.
            if line.lstrip().startswith("{"):
                parse_chunk(base_url, line.strip())
            raise malformed(base_url)
        return None
    return line[5:].strip()


def parse_chunk(base_url: str, data: str) -> dict[str, Any]:
    """One JSON chunk; an error object in it is raised as the server's error."""
    try:
        chunk = json.loads(data)
    except ValueError as error:
        raise malformed(base_url) from error
    if not isinstance(chunk, dict):
        raise malformed(base_url)
    if chunk.get("error"):
        message = server_message(json.dumps({"error": chunk["error"]}).encode())
        raise RemoteServerError(f"The server at {base_url} stopped the reply with an error: {message}")
    return chunk


def parse_whole_reply(base_url: str, content: bytes) -> tuple[str, FinishReason, dict[str, Any] | None]:
    """The text, finish reason and usage of a reply sent as one JSON body."""
    chunk = parse_chunk(base_url, content.decode("utf-8", "replace"))
    choices = chunk.get("choices") or [{}]
    message = choices[0].get("message") or {}
    text = message.get("content") or choices[0].get("text") or ""
    return str(text), finish_reason(choices[0].get("finish_reason")), chunk.get("usage")


def malformed(base_url: str) -> RemoteServerError:
    return RemoteServerError(
        f"The server at {base_url} sent data that is not an OpenAI-compatible stream; "
        f"check that the address in {SETTINGS_HINT} points to its /v1 endpoint."
    )
