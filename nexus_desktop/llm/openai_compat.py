"""A model source that streams from any OpenAI-compatible server (Ollama, LM Studio, vLLM, llama.cpp).

Only the common ground of those servers is used: ``POST /chat/completions`` with ``stream``,
``GET /models`` and Server-Sent Events read line by line.  Their differences are tolerated:
a role-only first chunk, usage in a final chunk or not at all, ``[DONE]`` or a plain end of
stream, error objects in the middle of a stream, and servers that ignore ``stream`` and answer
with one JSON body.  Samplers beyond OpenAI's own (top-k, min-p, Mirostat, DRY...) go as extra
body fields under the names local servers read (``openai_request.sampler_fields``); a server
that rejects unknown fields, as OpenAI's does, gets the request again without them.  Reading
the reply is ``openai_chunks``'s job, wording a failure ``openai_errors``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
    StreamEvent,
    StreamingSource,
    TokenEvent,
)
from nexus_desktop.llm.openai_chunks import finish_reason, parse_chunk, parse_whole_reply, sse_data
from nexus_desktop.llm.openai_errors import (
    SETTINGS_HINT,
    TEMPLATE_REFUSAL,
    model_missing,
    model_not_found,
    server_message,
    status_error,
    transport_error,
)
from nexus_desktop.llm.openai_request import SAMPLER_FIELD_NAMES, names_a_sampler_field, request_body
from nexus_desktop.llm.roles import shapes_from
from nexus_desktop.logs import register_secret

T = TypeVar("T")
log = logging.getLogger(__name__)

_CANCEL_POLL_SECONDS = 0.05
_CHECK_TIMEOUT_SECONDS = 10.0


class _Cancelled(Exception):
    """The caller's cancel token fired while we were waiting on the server."""


def estimate_tokens(text: str) -> int:
    """A rough count (about four characters per token); remote servers do not expose their tokenizer."""
    return (len(text) + 3) // 4


def _is_loopback(url: str) -> bool:
    try:
        return httpx.URL(url).host in ("127.0.0.1", "localhost", "::1")
    except httpx.InvalidURL:
        return False


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
                f"check that the address in {SETTINGS_HINT} ends with /v1."
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
        body = request_body(self.model, request, include_usage=True, with_samplers=self._sends_samplers)
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
                    for name in SAMPLER_FIELD_NAMES:
                        body.pop(name, None)
                except _ShapeRefused as refusal:
                    # vLLM, llama.cpp's server and LM Studio render the model's own chat template,
                    # which may refuse the conversation's shape: try the next stricter one.
                    stricter = next(shapes, None)
                    if stricter is None:
                        raise refusal.error from None
                    self._shape, body["messages"] = stricter  # kept for later requests
                    await self.aclose()  # a server that dropped the stream drops its connection too

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
                message = server_message(response.content)
                if self._sends_samplers and names_a_sampler_field(body, response.status_code, message):
                    raise _RetryWithoutSamplers
                refused = await self._status_error(response)
                if TEMPLATE_REFUSAL.search(message):
                    raise _ShapeRefused(refused)
                raise refused
            if response.headers.get("content-type", "").startswith("application/json"):
                # Some servers ignore ``stream`` and answer with one complete JSON body.
                await self._until_cancelled(response.aread(), context)
                text, finish, usage = parse_whole_reply(self.base_url, response.content)
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
                data = sse_data(self.base_url, line)
                if data is None:
                    continue
                if data == "[DONE]":
                    saw_done = True
                    break
                chunk = parse_chunk(self.base_url, data)
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
                        finish = finish_reason(choice["finish_reason"])
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
        return transport_error(self.base_url, error, self._timeout.read)

    async def _status_error(
        self, response: httpx.Response, *, listing_models: bool = False
    ) -> RemoteServerError:
        message = server_message(response.content)
        if model_missing(response.status_code, message) and not listing_models:
            try:
                available = await self.list_models()
            except RemoteServerError:
                available = []
            return model_not_found(self.base_url, self.model, available, response.status_code, message)
        return status_error(self.base_url, response, has_key=self._api_key is not None)


class _RetryWithoutStreamOptions(Exception):
    """An older server rejected ``stream_options``; the request is sent again without it."""


class _RetryWithoutSamplers(Exception):
    """The server rejected a field of ``sampler_fields``; the request is sent again without them."""


class _ShapeRefused(Exception):
    """The server refused the conversation in this shape: its chat template's rule said so, or
    it ended the stream empty (llama-cpp-python's server does that when its template raises).
    ``error`` is what the user sees if no shape gets a reply."""

    def __init__(self, error: RemoteServerError) -> None:
        super().__init__(str(error))
        self.error = error
