"""A model source that streams from any OpenAI-compatible server (Ollama, LM Studio, vLLM, llama.cpp).

Only the common ground of those servers is used: ``POST /chat/completions`` with ``stream``,
``GET /models`` and Server-Sent Events read line by line.  Their differences are tolerated:
a role-only first chunk, usage in a final chunk or not at all, ``[DONE]`` or a plain end of
stream, error objects in the middle of a stream, and servers that ignore ``stream`` and answer
with one JSON body.  Samplers beyond OpenAI's own (top-k, min-p, Mirostat, DRY...) go as extra
body fields under the names local servers read (``sampler_fields``); a server that rejects
unknown fields, as OpenAI's does, gets the request again without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx

from nexus_desktop.llm.contract import (
    ChatInput,
    ChatOutput,
    FinishReason,
    RemoteServerError,
    ReplyStats,
    RunContext,
    SamplingSettings,
    StreamEvent,
    StreamingSource,
    TokenEvent,
)
from nexus_desktop.llm.roles import shapes_from
from nexus_desktop.logs import redact, register_secret

T = TypeVar("T")
log = logging.getLogger(__name__)

_CANCEL_POLL_SECONDS = 0.05
_CHECK_TIMEOUT_SECONDS = 10.0
_SETTINGS_HINT = "Settings → Remote server"  # the tab's name in the settings dialog


class _Cancelled(Exception):
    """The caller's cancel token fired while we were waiting on the server."""


# What servers say when the model's chat template refuses a conversation (Mistral's and Gemma's
# templates raise these; LM Studio and llama.cpp server wrap them in their own words).
_TEMPLATE_REFUSAL = re.compile(
    r"roles must alternate|system role not supported|only user and assistant roles|chat template|jinja",
    re.IGNORECASE,
)


def estimate_tokens(text: str) -> int:
    """A rough count (about four characters per token); remote servers do not expose their tokenizer."""
    return (len(text) + 3) // 4


def _server_message(body: bytes) -> str:
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


def _is_loopback(url: str) -> bool:
    try:
        return httpx.URL(url).host in ("127.0.0.1", "localhost", "::1")
    except httpx.InvalidURL:
        return False


def _finish_reason(raw: object) -> FinishReason:
    return "length" if raw == "length" else "stop"


def sampler_fields(sampling: SamplingSettings) -> dict[str, Any]:
    """The samplers outside the OpenAI API, as extra body fields, each only when it is switched on.

    The names are those of llama.cpp's server, which KoboldCpp and LM Studio share; the two that
    others spell differently go under both names (``repetition_penalty`` for vLLM and KoboldCpp,
    ``mirostat_mode`` for llama-cpp-python's server).  A server ignores the names it does not know.
    """
    fields: dict[str, Any] = {}
    if sampling.top_k > 0:
        fields["top_k"] = sampling.top_k
    if sampling.min_p > 0:
        fields["min_p"] = sampling.min_p
    if sampling.typical_p < 1:
        fields["typical_p"] = sampling.typical_p
    if sampling.repeat_penalty != 1:
        fields["repeat_penalty"] = fields["repetition_penalty"] = sampling.repeat_penalty
    if sampling.mirostat_mode:
        fields["mirostat"] = fields["mirostat_mode"] = sampling.mirostat_mode
        fields["mirostat_tau"] = sampling.mirostat_tau
        fields["mirostat_eta"] = sampling.mirostat_eta
    if sampling.dry_multiplier > 0:
        fields["dry_multiplier"] = sampling.dry_multiplier
        fields["dry_base"] = sampling.dry_base
        fields["dry_allowed_length"] = sampling.dry_allowed_length
    return fields


class OpenAICompatSource(StreamingSource):
    """Chat with ``model`` on the server at ``base_url`` (the address that ends in ``/v1``).

    ``timeout`` bounds each wait on the server (connecting, the first byte, the gap between
    chunks), not the whole reply.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        context_size: int = 8192,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.base_url = base_url.strip().rstrip("/")
        self.model = model
        self._api_key = api_key or None
        register_secret(self._api_key)
        self._context_size = context_size
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._client: httpx.AsyncClient | None = None
        self._shape = 0
        """Index into ``roles.SHAPES``: the first conversation shape the server's template took."""
        self._sends_samplers = True
        """False once the server refused ``sampler_fields``: later requests leave them out."""

    @property
    def name(self) -> str:
        return f"remote: {self.model}"

    @property
    def context_size(self) -> int:
        return self._context_size

    async def count_tokens(self, texts: list[str]) -> list[int]:
        """Estimated counts (see ``estimate_tokens``): good enough to trim history with a margin."""
        return [estimate_tokens(text) for text in texts]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def list_models(self) -> list[str]:
        """The ids the server offers, for a model dropdown."""
        response = await self._request("GET", "/models", timeout=_CHECK_TIMEOUT_SECONDS)
        try:
            listing = response.json()
            entries = listing.get("data") or listing.get("models") or []
            return [str(entry.get("id") or entry.get("name")) for entry in entries]
        except (ValueError, AttributeError) as error:
            raise RemoteServerError(
                f"The server at {self.base_url} did not answer /models with an OpenAI model list; "
                f"check that the address in {_SETTINGS_HINT} ends with /v1."
            ) from error

    async def check(self) -> list[str]:
        """Reach the server and prove the key works.

        Returns the server's models; the configured one may be missing from them, since servers such
        as llama.cpp's answer under any model name.
        """
        return await self.list_models()

    async def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        """Yield each text delta as it arrives, then one ``ChatOutput``.

        Token counts come from the server's usage chunk when it sends one (Ollama, vLLM, OpenAI);
        otherwise the reply's count is the number of deltas and the prompt's is estimated.
        Cancelling through ``context.cancel`` closes the connection within about 50 ms and ends
        the stream with the partial text and ``finish_reason="cancelled"``.
        """
        body = self._request_body(request, include_usage=True)
        shapes = shapes_from(self._shape, body["messages"])
        self._shape, body["messages"] = next(shapes)
        started = time.perf_counter()
        while True:
            async with contextlib.aclosing(self._stream_once(body, request, context, started)) as attempt:
                try:
                    async for event in attempt:
                        yield event
                    return
                except _RetryWithoutStreamOptions:
                    del body["stream_options"]
                except _RetryWithoutSamplers:
                    log.warning(
                        "The server at %s refused the extra sampler fields; replies use its defaults "
                        "for top-k, min-p, Mirostat, DRY and the repeat penalty.",
                        self.base_url,
                    )
                    self._sends_samplers = False
                    for name in _SAMPLER_FIELD_NAMES:
                        body.pop(name, None)
                except _ShapeRefused as refusal:
                    # vLLM, llama.cpp's server and LM Studio render the model's own chat template,
                    # which may refuse the conversation's shape: try the next stricter one.
                    stricter = next(shapes, None)
                    if stricter is None:
                        raise refusal.error from None
                    self._shape, body["messages"] = stricter  # kept for later requests
                    await self.aclose()  # a server that dropped the stream drops its connection too

    def _request_body(self, request: ChatInput, *, include_usage: bool) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.presence_penalty:
            body["presence_penalty"] = sampling.presence_penalty
        if sampling.frequency_penalty:
            body["frequency_penalty"] = sampling.frequency_penalty
        if self._sends_samplers:
            body.update(sampler_fields(sampling))
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.json_schema, "strict": True},
            }
        if request.grammar is not None:
            body["grammar"] = request.grammar  # llama.cpp server and vLLM; others ignore it
        return body

    async def _stream_once(
        self, body: dict[str, Any], request: ChatInput, context: RunContext, started: float
    ) -> AsyncGenerator[StreamEvent, None]:
        pieces: list[str] = []
        first_token_at: float | None = None
        last_token_at = started
        usage: dict[str, Any] | None = None
        finish: FinishReason | None = None

        def output(reason: FinishReason) -> ChatOutput:
            text = "".join(pieces)
            prompt_tokens = sum(estimate_tokens(m.content) for m in request.messages)
            completion_tokens = len(pieces)
            if usage:
                prompt_tokens = int(usage.get("prompt_tokens") or prompt_tokens)
                completion_tokens = int(usage.get("completion_tokens") or completion_tokens)
            first = first_token_at if first_token_at is not None else time.perf_counter()
            stats = ReplyStats(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                seconds=max(0.0, last_token_at - first),
                first_token_seconds=first - started,
                context_size=self._context_size,
                finish_reason=reason,
            )
            return ChatOutput(text=text, stats=stats)

        client = self._http()
        http_request = client.build_request("POST", self._url("/chat/completions"), json=body)
        try:
            response = await self._until_cancelled(client.send(http_request, stream=True), context)
        except _Cancelled:
            yield output("cancelled")
            return
        except httpx.HTTPError as error:
            raise self._transport_error(error) from error
        try:
            if response.status_code >= 400:
                await response.aread()
                if body.get("stream_options") and b"stream_options" in response.content:
                    raise _RetryWithoutStreamOptions
                if self._names_a_sampler_field(body, response):
                    raise _RetryWithoutSamplers
                refused = await self._status_error(response)
                if _TEMPLATE_REFUSAL.search(_server_message(response.content)):
                    raise _ShapeRefused(refused)
                raise refused
            if response.headers.get("content-type", "").startswith("application/json"):
                # Some servers ignore ``stream`` and answer with one complete JSON body.
                await self._until_cancelled(response.aread(), context)
                text, finish, usage = self._parse_whole_reply(response.content)
                first_token_at = last_token_at = time.perf_counter()
                if text:
                    pieces.append(text)
                    yield TokenEvent(text)
                yield output(finish)
                return
            lines = response.aiter_lines()
            saw_done = False
            while True:
                try:
                    line = await self._until_cancelled(anext(lines), context)
                except StopAsyncIteration:
                    break
                data = self._sse_data(line)
                if data is None:
                    continue
                if data == "[DONE]":
                    saw_done = True
                    break
                chunk = self._parse_chunk(data)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = delta.get("content") or choice.get("text") or ""
                    if text:
                        now = time.perf_counter()
                        first_token_at = now if first_token_at is None else first_token_at
                        last_token_at = now
                        pieces.append(text)
                        yield TokenEvent(text)
                    if choice.get("finish_reason"):
                        finish = _finish_reason(choice["finish_reason"])
            if not saw_done and finish is None and not pieces:
                raise _ShapeRefused(
                    RemoteServerError(
                        f"The server at {self.base_url} ended the stream without sending a reply; "
                        "check the server's log and try again."
                    )
                )
            yield output(finish or "stop")
        except _Cancelled:
            yield output("cancelled")
        except httpx.HTTPError as error:
            raise self._transport_error(error) from error
        finally:
            await response.aclose()

    def _names_a_sampler_field(self, body: dict[str, Any], response: httpx.Response) -> bool:
        """Whether the server refused the request over one of ``sampler_fields`` (OpenAI answers
        400 "Unrecognized request argument supplied: top_k")."""
        if response.status_code not in (400, 422) or not self._sends_samplers:
            return False
        message = _server_message(response.content)
        return any(re.search(rf"\b{name}\b", message) for name in body if name in _SAMPLER_FIELD_NAMES)

    async def _until_cancelled(self, awaitable: Awaitable[T], context: RunContext) -> T:
        """Await ``awaitable`` but give up (raising ``_Cancelled``) soon after the cancel token fires.

        The token is a thread-safe flag with no awaitable form, so it is polled.
        """
        if context.cancel.cancelled:
            if hasattr(awaitable, "close"):
                awaitable.close()  # A coroutine never awaited would warn.
            raise _Cancelled
        task = asyncio.ensure_future(awaitable)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=_CANCEL_POLL_SECONDS)
                if not task.done() and context.cancel.cancelled:
                    raise _Cancelled
        except BaseException:
            # Our token fired or our own task was cancelled: never leave the read running behind us.
            task.cancel()
            try:
                late = await task
            except BaseException:
                pass
            else:
                if isinstance(late, httpx.Response):
                    await late.aclose()  # It arrived as we gave up; do not leak the connection.
            raise
        return task.result()

    def _sse_data(self, line: str) -> str | None:
        """The payload of a ``data:`` line; None for blank, comment, ``event:`` and ``id:`` lines."""
        if line.startswith("error:"):
            # llama.cpp's own server reports failures mid-stream as ``error: {json}``.
            self._parse_chunk(json.dumps({"error": _server_message(line[6:].strip().encode())}))
        if not line.startswith("data:"):
            if line.strip() and not line.startswith((":", "event:", "id:", "retry:")):
                # A JSON error body where events should be, e.g. a proxy's error page.
                if line.lstrip().startswith("{"):
                    self._parse_chunk(line.strip())
                raise self._malformed()
            return None
        return line[5:].strip()

    def _parse_chunk(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError as error:
            raise self._malformed() from error
        if not isinstance(chunk, dict):
            raise self._malformed()
        if chunk.get("error"):
            message = _server_message(json.dumps({"error": chunk["error"]}).encode())
            raise RemoteServerError(
                f"The server at {self.base_url} stopped the reply with an error: {message}"
            )
        return chunk

    def _parse_whole_reply(self, content: bytes) -> tuple[str, FinishReason, dict[str, Any] | None]:
        chunk = self._parse_chunk(content.decode("utf-8", "replace"))
        choices = chunk.get("choices") or [{}]
        message = choices[0].get("message") or {}
        text = message.get("content") or choices[0].get("text") or ""
        return str(text), _finish_reason(choices[0].get("finish_reason")), chunk.get("usage")

    def _malformed(self) -> RemoteServerError:
        return RemoteServerError(
            f"The server at {self.base_url} sent data that is not an OpenAI-compatible stream; "
            f"check that the address in {_SETTINGS_HINT} points to its /v1 endpoint."
        )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Accept": "application/json, text/event-stream"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            # Proxy settings from the environment must not capture a server on this machine.
            self._client = httpx.AsyncClient(
                headers=headers, timeout=self._timeout, trust_env=not _is_loopback(self.base_url)
            )
        return self._client

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def _request(self, method: str, path: str, *, timeout: float) -> httpx.Response:
        try:
            response = await self._http().request(
                method, self._url(path), timeout=httpx.Timeout(timeout, connect=self._timeout.connect)
            )
        except httpx.HTTPError as error:
            raise self._transport_error(error) from error
        if response.status_code >= 400:
            raise await self._status_error(response, listing_models=path == "/models")
        return response

    def _transport_error(self, error: httpx.HTTPError) -> RemoteServerError:
        if isinstance(error, httpx.ConnectTimeout | httpx.ConnectError):
            return RemoteServerError(
                f"Cannot reach {self.base_url} — is the server running? "
                f"Check the address in {_SETTINGS_HINT}."
            )
        if isinstance(error, httpx.TimeoutException):
            try:
                seconds = error.request.extensions["timeout"]["read"]
            except (RuntimeError, KeyError, TypeError):
                seconds = self._timeout.read
            return RemoteServerError(
                f"The server at {self.base_url} did not answer within {seconds:g} "
                f"second{'' if seconds == 1 else 's'}; "
                "it may be busy or still loading the model, so try again in a moment."
            )
        if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return RemoteServerError(
                f"{self.base_url!r} is not a valid http(s) address; fix it in {_SETTINGS_HINT}."
            )
        return RemoteServerError(
            f"The connection to {self.base_url} broke during the reply ({type(error).__name__}); try again."
        )

    async def _status_error(
        self, response: httpx.Response, *, listing_models: bool = False
    ) -> RemoteServerError:
        status = response.status_code
        message = _server_message(response.content)
        if status in (401, 403):
            if self._api_key is None:
                return RemoteServerError(
                    f"The server at {self.base_url} needs an API key (HTTP {status}); "
                    f"enter it in {_SETTINGS_HINT}."
                )
            return RemoteServerError(
                f"The server at {self.base_url} refused the API key (HTTP {status}); "
                f"update the key in {_SETTINGS_HINT}."
            )
        model_missing = status == 404 or (
            status == 400
            and "model" in message.lower()
            and ("not" in message.lower() or "exist" in message.lower())
        )
        if model_missing and not listing_models:
            return await self._model_not_found(status, message)
        if status == 404:
            return RemoteServerError(
                f"The server at {self.base_url} has no {response.request.url.path} endpoint (HTTP 404); "
                f"check that the address in {_SETTINGS_HINT} ends with /v1."
            )
        if status >= 500:
            return RemoteServerError(f"The server at {self.base_url} failed (HTTP {status}): {message}")
        return RemoteServerError(
            f"The server at {self.base_url} rejected the request (HTTP {status}): {message}"
        )

    async def _model_not_found(self, status: int, message: str) -> RemoteServerError:
        try:
            available = await self.list_models()
        except RemoteServerError:
            available = []
        if available and self.model not in available:
            return RemoteServerError(
                f"The server at {self.base_url} has no model named {self.model!r}; "
                f"choose one of {', '.join(available)} in {_SETTINGS_HINT}."
            )
        if status == 404:
            return RemoteServerError(
                f"The server at {self.base_url} has no chat endpoint (HTTP 404: {message}); "
                f"check that the address in {_SETTINGS_HINT} ends with /v1."
            )
        return RemoteServerError(
            f"The server at {self.base_url} rejected the request (HTTP {status}): {message}"
        )


class _RetryWithoutStreamOptions(Exception):
    """An older server rejected ``stream_options``; the request is sent again without it."""


class _RetryWithoutSamplers(Exception):
    """The server rejected a field of ``sampler_fields``; the request is sent again without them."""


_SAMPLER_FIELD_NAMES = frozenset(
    sampler_fields(SamplingSettings(typical_p=0.5, repeat_penalty=1.2, mirostat_mode=2, dry_multiplier=1.0))
)


class _ShapeRefused(Exception):
    """The server refused the conversation in this shape: its chat template's rule said so, or
    it ended the stream empty (llama-cpp-python's server does that when its template raises).
    ``error`` is what the user sees if no shape gets a reply."""

    def __init__(self, error: RemoteServerError) -> None:
        super().__init__(str(error))
        self.error = error
