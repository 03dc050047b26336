"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose answers a test sets, for the governor
and reply-pipeline tests: the model stands outside the machine, the app talks to it through its
real ``OpenAICompatSource`` over HTTP.

- A chat request is answered with ``reply_words`` words streamed one delta each; the request's
  ``max_tokens`` cuts it (``finish_reason: length``), as a real server does.  No usage chunk, so
  the source counts one token per delta.
- A request with a ``grammar`` (picking a tool) is answered with the next of ``tool_choices``
  (``none`` when there is none left), one with a ``response_format`` (a tool's arguments) with
  the next of ``tool_arguments`` (``{}`` when none is left).
- ``hold()`` makes chat requests wait until ``release()``; ``waiting`` says how many wait.
- ``fail_chat`` answers chat requests with HTTP 500.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "scripted"
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.requests: list[dict[str, Any]] = []
        self.reply_words = 5
        self.tool_choices: list[str] = []
        self.tool_arguments: list[str] = []
        self.fail_chat = False
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self.waiting = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "grammar" not in r and "response_format" not in r]

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_at_gate(self) -> None:
        with self._lock:
            self.waiting += 1
        try:
            self._open.wait(60)
        finally:
            with self._lock:
                self.waiting -= 1


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.server.requests.append(body)
        if "grammar" in body:
            choices = self.server.tool_choices
            self._stream([choices.pop(0) if choices else "none"], "stop")
        elif "response_format" in body:
            arguments = self.server.tool_arguments
            self._stream([arguments.pop(0) if arguments else "{}"], "stop")
        elif self.server.fail_chat:
            self._json(500, {"error": {"message": "the test said this call fails"}})
        else:
            self.server.wait_at_gate()
            words = WORDS[: self.server.reply_words]
            limit = int(body.get("max_tokens") or len(words))
            pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words[:limit])]
            self._stream(pieces, "length" if limit < len(words) else "stop")

    def _json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, pieces: list[str], finish: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        chunks = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        with contextlib.suppress(OSError):
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()


@contextlib.contextmanager
def running_chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="chat-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release()
        server.shutdown()
        server.server_close()
