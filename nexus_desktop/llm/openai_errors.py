"""What an OpenAI-compatible server's failures mean, in words that say what to do.

Servers put the reason in different places (OpenAI's ``error.message``, FastAPI's ``detail``,
plain text); ``server_message`` finds it, and the functions here turn a status or a broken
connection into a ``RemoteServerError`` that points at the setting to fix.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from nexus_desktop.llm.contract import RemoteServerError
from nexus_desktop.logs import redact

SETTINGS_HINT = "Settings → Remote server"  # the tab's name in the settings dialog

# What servers say when the model's chat template refuses a conversation (Mistral's and Gemma's
# templates raise these; LM Studio and llama.cpp server wrap them in their own words).
TEMPLATE_REFUSAL = re.compile(
    r"roles must alternate|system role not supported|only user and assistant roles|chat template|jinja",
    re.IGNORECASE,
)


def server_message(body: bytes) -> str:
    """The human part of an error body: OpenAI's ``error.message``, FastAPI's ``detail`` or the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return redact(text[:300])
    message: Any = data
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message", data)))
        message = error.get("message", error) if isinstance(error, dict) else error
    return redact(str(message)[:300])


def transport_error(base_url: str, error: httpx.HTTPError, read_timeout: float | None) -> RemoteServerError:
    """A connection that failed, timed out or broke; ``read_timeout`` is the wait to name when the
    request does not say which one ran out."""
    if isinstance(error, httpx.ConnectTimeout | httpx.ConnectError):
        return RemoteServerError(
            f"Cannot reach {base_url} — is the server running? Check the address in {SETTINGS_HINT}."
        )
    if isinstance(error, httpx.TimeoutException):
        try:
            seconds = error.request.extensions["timeout"]["read"]
        except (RuntimeError, KeyError, TypeError):
            seconds = read_timeout
        return RemoteServerError(
            f"The server at {base_url} did not answer within {seconds:g} "
            f"second{'' if seconds == 1 else 's'}; "
            "it may be busy or still loading the model, so try again in a moment."
        )
    if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return RemoteServerError(f"{base_url!r} is not a valid http(s) address; fix it in {SETTINGS_HINT}.")
    return RemoteServerError(
        f"The connection to {base_url} broke during the reply ({type(error).__name__}); try again."
    )


def model_missing(status: int, message: str) -> bool:
    """Whether an error status says the server has no model of the requested name."""
    lowered = message.lower()
    return status == 404 or (
        status == 400 and "model" in lowered and ("not" in lowered or "exist" in lowered)
    )


def status_error(base_url: str, response: httpx.Response, *, has_key: bool) -> RemoteServerError:
    """An error status other than a missing model (see ``model_not_found``)."""
    status = response.status_code
    message = server_message(response.content)
    if status in (401, 403):
        if not has_key:
            return RemoteServerError(
                f"The server at {base_url} needs an API key (HTTP {status}); enter it in {SETTINGS_HINT}."
            )
        return RemoteServerError(
            f"The server at {base_url} refused the API key (HTTP {status}); "
            f"update the key in {SETTINGS_HINT}."
        )
    if status == 404:
        return RemoteServerError(
            f"The server at {base_url} has no {response.request.url.path} endpoint (HTTP 404); "
            f"check that the address in {SETTINGS_HINT} ends with /v1."
        )
    if status >= 500:
        return RemoteServerError(f"The server at {base_url} failed (HTTP {status}): {message}")
    return RemoteServerError(f"The server at {base_url} rejected the request (HTTP {status}): {message}")


def model_not_found(
    base_url: str, model: str, available: list[str], status: int, message: str
) -> RemoteServerError:
    """A chat request refused as ``model_missing``; ``available`` is the server's model list, empty
    when it could not be read."""
    if available and model not in available:
        return RemoteServerError(
            f"The server at {base_url} has no model named {model!r}; "
            f"choose one of {', '.join(available)} in {SETTINGS_HINT}."
        )
    if status == 404:
        return RemoteServerError(
            f"The server at {base_url} has no chat endpoint (HTTP 404: {message}); "
            f"check that the address in {SETTINGS_HINT} ends with /v1."
        )
    return RemoteServerError(f"The server at {base_url} rejected the request (HTTP {status}): {message}")
