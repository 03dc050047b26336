"""A small asyncio HTTP/1.1 server: enough of the protocol for OpenAI clients, nothing more.

Why our own rather than uvicorn: it runs on whatever loop is running (the window's qasync loop,
or ``asyncio.run`` for ``nexus gateway serve``), so replies stream straight from the app's model
source without a second loop or thread, and it adds no runtime dependency.

What it does: keep-alive, ``Content-Length`` bodies (bounded: a larger one is refused from its
header, before any of it is read), JSON answers, and Server-Sent Events sent with chunked
transfer encoding.  Authentication runs on the headers, before the body is read.  A client that
goes away mid-stream raises ``ConnectionError`` out of ``Reply.event``, so the route can stop
its model call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
"""Loopback only: the gateway answers as the user's characters, with the user's model."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Chat requests with long histories are well under this; anything bigger is refused unread."""
MAX_HEADER_BYTES = 32 * 1024
_IDLE_SECONDS = 120.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpError(Exception):
    """An error answer: ``status``, and OpenAI's error fields (``str()`` is the message)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str = "",
        param: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        """OpenAI's error shape, which its clients turn into their own exceptions."""
        return {
            "error": {
                "message": str(self),
                "type": self.kind,
                "param": self.param or None,
                "code": self.code or None,
            }
        }


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError) as error:
            raise HttpError(
                400, f"The request body is not valid JSON ({error}).", code="invalid_json"
            ) from None


Authorize = Callable[[Request], Awaitable[None]]
"""Raises ``HttpError`` (401) for a request without the right credentials; sees only headers."""
Route = Callable[[Request, "Reply"], Awaitable[None]]


class Reply:
    """One response: ``json`` once, or ``start_events`` then ``event``\\ s then ``end_events``."""

    def __init__(self, writer: asyncio.StreamWriter, *, keep_alive: bool) -> None:
        self._writer = writer
        self.keep_alive = keep_alive
        self.started = False

    async def json(self, status: int, payload: Any, *, close: bool = False) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.keep_alive = self.keep_alive and not close
        head = self._head(status, "application/json", f"Content-Length: {len(body)}")
        self._writer.write(head + body)
        self.started = True
        await self._writer.drain()

    async def start_events(self) -> None:
        self._writer.write(
            self._head(200, "text/event-stream", "Cache-Control: no-cache", "Transfer-Encoding: chunked")
        )
        self.started = True
        await self._writer.drain()

    async def event(self, data: str) -> None:
        """One Server-Sent Event: ``data: <data>`` and a blank line, flushed to the client now."""
        payload = f"data: {data}\n\n".encode()
        self._writer.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        await self._writer.drain()

    async def end_events(self) -> None:
        self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()

    def _head(self, status: int, content_type: str, *extra: str) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {content_type}; charset=utf-8"
            if "json" in content_type
            else f"Content-Type: {content_type}",
            *extra,
            "Connection: keep-alive" if self.keep_alive else "Connection: close",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


class HttpServer:
    """Serves ``routes`` (``(method, path) -> Route``) on ``HOST``; ``await start()``, ``await aclose()``."""

    def __init__(self, routes: Mapping[tuple[str, str], Route], authorize: Authorize, port: int) -> None:
        self.routes = routes
        self.authorize = authorize
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; raises ``OSError`` when the port cannot be bound (taken, not allowed)."""
        self._server = await asyncio.start_server(self._connection, HOST, self.port, limit=MAX_HEADER_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening and end open connections (a reply streaming is cut off)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away: nothing to answer
        except asyncio.CancelledError:
            pass  # ``aclose``: asyncio's stream callback would log a cancelled task as an error
        finally:
            self._connections.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; returns whether the connection stays open for another."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IDLE_SECONDS)
        except asyncio.LimitOverrunError:
            await Reply(writer, keep_alive=False).json(
                431, HttpError(431, "The request headers are too large.").body()
            )
            return False
        except asyncio.IncompleteReadError:
            return False  # closed between requests
        try:
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ")
        except ValueError:
            await Reply(writer, keep_alive=False).json(400, HttpError(400, "Malformed HTTP request.").body())
            return False
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        reply = Reply(writer, keep_alive=keep_alive)
        request = Request(method.upper(), target.split("?", 1)[0].rstrip("/"), headers)
        body_read = False
        try:
            route = self._route(request)
            await self.authorize(request)
            _check_length(headers)
            if headers.get("expect", "").lower() == "100-continue":  # curl waits for this on big bodies
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request = Request(request.method, request.path, headers, await _read_body(reader, headers))
            body_read = True
            await route(request, reply)
        except HttpError as error:
            if reply.started:
                raise ConnectionResetError("an error after the answer began") from error
            if not body_read:
                await _skip_small_body(reader, headers, reply)
            await reply.json(error.status, error.body())
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("The gateway failed answering %s %s", request.method, request.path)
            if reply.started:
                return False
            await reply.json(
                500,
                HttpError(500, "NEXUS failed answering; see its log.", kind="server_error").body(),
                close=True,
            )
        return reply.keep_alive

    def _route(self, request: Request) -> Route:
        route = self.routes.get((request.method, request.path))
        if route is not None:
            return route
        if any(path == request.path for _, path in self.routes):
            raise HttpError(405, f"{request.path} does not take {request.method}.")
        raise HttpError(404, f"There is no {request.path} here; the API is under /v1.", code="not_found")


def _check_length(headers: dict[str, str]) -> None:
    """Refuse a body from its headers (411, 413), before any of it is read."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HttpError(411, "Send the request with a Content-Length header (chunked bodies are not taken).")
    length = _content_length(headers)
    if length > MAX_BODY_BYTES:
        raise HttpError(
            413,
            f"The request body is {length} bytes; the gateway takes at most {MAX_BODY_BYTES} bytes. "
            "Send a shorter history.",
            code="request_too_large",
        )


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    length = _content_length(headers)
    return await reader.readexactly(length) if length else b""


def _content_length(headers: dict[str, str]) -> int:
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "The Content-Length header is not a number.") from None
    if length < 0:
        raise HttpError(400, "The Content-Length header is negative.")
    return length


async def _skip_small_body(reader: asyncio.StreamReader, headers: dict[str, str], reply: Reply) -> None:
    """Before an error answered without reading the body: read it when small, so the connection
    can go on; close the connection after the answer when it is large or of unknown size."""
    try:
        length = _content_length(headers)
    except HttpError:
        reply.keep_alive = False
        return
    if length == 0:
        return
    if length > 64 * 1024 or "chunked" in headers.get("transfer-encoding", "").lower():
        reply.keep_alive = False  # never read a huge body just to be polite
        return
    try:
        await asyncio.wait_for(reader.readexactly(length), 5)
    except (asyncio.IncompleteReadError, TimeoutError):
        reply.keep_alive = False
