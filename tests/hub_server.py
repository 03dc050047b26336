"""A fake Hugging Face hub on 127.0.0.1, speaking the API shape ``huggingface_hub`` uses.

Serves ``/api/models?search=`` (search), ``/api/models/{owner}/{name}[/revision/{rev}]``
(model info with siblings; ``?blobs=true`` adds size and LFS sha256) and
``/{owner}/{name}/resolve/{rev}/{file}`` (GET with ``Range`` → 206 + ``Content-Range``, and HEAD
with ``X-Repo-Commit``, ``ETag``, ``X-Linked-Size``, ``X-Linked-Etag``).

Fault switches on ``FakeHub`` (tests flip them between requests):
``drop_after`` closes the connection after N body bytes (``drops_left`` times), ``fail_status``
answers downloads with that status, ``lie_sha`` lists a wrong sha256 for a file, and
``claimed_size`` lists a size other than the real one, and ``throttle`` slows downloads.

Files are real GGUF bytes: the bundled SmolLM2 file and small ones written by ``gguf``'s
``GGUFWriter`` (``tiny_gguf``), so what the library reads from them is real metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "4f1c3a9b2d7e8f60a1b2c3d4e5f60718293a4b5c"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/]+))?$")


def tiny_gguf(
    *,
    name: str = "Tiny Test",
    licence: str | None = "mit",
    n_layers: int = 4,
    context_length: int = 2048,
    chat_template: str | None = "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}",
    payload_bytes: int = 64 * 1024,
    file_type: int = 7,  # Q8_0
    seed: int = 1,
) -> bytes:
    """A small, valid llama-architecture GGUF file: real header, one tensor of ``payload_bytes``."""
    [data] = _written_gguf(
        name=name,
        licence=licence,
        n_layers=n_layers,
        context_length=context_length,
        chat_template=chat_template,
        tensor_bytes=[payload_bytes],
        file_type=file_type,
        seed=seed,
    ).values()
    return data


def tiny_split_gguf(stem: str, parts: int = 2, part_bytes: int = 512 * 1024) -> dict[str, bytes]:
    """A real split model (``STEM-00001-of-0000N.gguf``...), one tensor a part, as ``gguf`` writes it."""
    written = _written_gguf(
        name="Tiny Split",
        licence="mit",
        n_layers=parts,
        context_length=2048,
        chat_template=None,
        tensor_bytes=[part_bytes] * parts,
        file_type=1,  # F16
        seed=7,
        split_max_tensors=1,
    )
    return {name.replace("tiny", stem, 1): data for name, data in written.items()}


def _written_gguf(
    *,
    name: str,
    licence: str | None,
    n_layers: int,
    context_length: int,
    chat_template: str | None,
    tensor_bytes: list[int],
    file_type: int,
    seed: int,
    split_max_tensors: int = 0,
) -> dict[str, bytes]:
    import numpy as np
    from gguf import GGUFWriter

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.gguf"
        writer = GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
        writer.add_name(name)
        writer.add_block_count(n_layers)
        writer.add_context_length(context_length)
        writer.add_embedding_length(64)
        writer.add_head_count(4)
        writer.add_file_type(file_type)
        if licence:
            writer.add_license(licence)
        if chat_template:
            writer.add_chat_template(chat_template)
        rng = np.random.default_rng(seed)
        for index, size in enumerate(tensor_bytes):
            values = rng.standard_normal(size // 4).astype(np.float32)
            shaped = values.reshape(-1, 64) if values.size % 64 == 0 else values
            writer.add_tensor("token_embd.weight" if index == 0 else f"blk.{index - 1}.ffn_up.weight", shaped)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return {file.name: file.read_bytes() for file in sorted(Path(folder).glob("*.gguf"))}


@dataclass
class FakeHub:
    """The served repos (repo id → file path → bytes) and the fault switches."""

    url: str = ""
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    downloads: dict[str, int] = field(default_factory=dict)
    drop_after: int | None = None
    drops_left: int = 1
    fail_status: int | None = None
    lie_sha: set[str] = field(default_factory=set)
    claimed_size: dict[str, int] = field(default_factory=dict)
    throttle: float | None = None
    """Seconds to wait between 256 KiB blocks of a download (a slow line, to pause mid-way)."""
    requests: list[str] = field(default_factory=list)
    """Every request line served, e.g. ``GET /api/models?search=...``, for assertions."""
    ranges: list[str] = field(default_factory=list)
    """The ``Range`` header of every download request ("" when none)."""

    def add_repo(self, repo_id: str, files: dict[str, bytes], downloads: int = 10) -> None:
        self.repos[repo_id] = files
        self.downloads[repo_id] = downloads

    def sha256(self, repo_id: str, path: str) -> str:
        if path in self.lie_sha:
            return hashlib.sha256(b"not these bytes").hexdigest()
        return hashlib.sha256(self.repos[repo_id][path]).hexdigest()

    def size(self, repo_id: str, path: str) -> int:
        return self.claimed_size.get(path, len(self.repos[repo_id][path]))

    def sibling(self, repo_id: str, path: str, blobs: bool) -> dict[str, object]:
        entry: dict[str, object] = {"rfilename": path}
        if blobs:
            entry["size"] = self.size(repo_id, path)
            entry["blobId"] = hashlib.sha1(self.repos[repo_id][path]).hexdigest()
            if path.endswith(".gguf"):
                entry["lfs"] = {
                    "size": self.size(repo_id, path),
                    "sha256": self.sha256(repo_id, path),
                    "pointerSize": 134,
                }
        return entry


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            hub.requests.append(f"{self.command} {self.path}")
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            if path == "/api/models":
                self._search(query)
                return
            info = _INFO.match(path)
            if info:
                self._model_info(info["repo"], info["rev"], query)
                return
            resolve = _RESOLVE.match(path)
            if resolve:
                self._resolve(resolve["repo"], resolve["file"], body)
                return
            self._json(404, {"error": "not found"})

        def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _search(self, query: dict[str, list[str]]) -> None:
            wanted = query.get("search", [""])[0].lower()
            gguf_only = "gguf" in query.get("filter", [])
            found = [
                {"id": repo_id, "downloads": hub.downloads[repo_id], "likes": 1, "tags": ["gguf"],
                 "lastModified": "2026-01-02T03:04:05.000Z"}
                for repo_id, files in hub.repos.items()
                if wanted in repo_id.lower() and (not gguf_only or any(f.endswith(".gguf") for f in files))
            ]  # fmt: skip
            found.sort(key=lambda repo: -int(str(repo["downloads"])))
            limit = int(query.get("limit", ["1000"])[0])
            self._json(200, found[:limit])

        def _not_found(self) -> None:
            self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

        def _model_info(self, repo_id: str, revision: str | None, query: dict[str, list[str]]) -> None:
            if repo_id not in hub.repos:
                self._not_found()
                return
            if revision not in (None, "main", COMMIT):
                self._json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
                return
            blobs = query.get("blobs", [""])[0].lower() == "true"
            siblings = [hub.sibling(repo_id, path, blobs) for path in hub.repos[repo_id]]
            self._json(200, {"id": repo_id, "sha": COMMIT, "private": False, "siblings": siblings,
                             "downloads": hub.downloads[repo_id], "likes": 1, "tags": ["gguf"]})  # fmt: skip

        def _resolve(self, repo_id: str, file: str, body: bool) -> None:
            data = hub.repos.get(repo_id, {}).get(file)
            if data is None:
                self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                return
            if hub.fail_status is not None:
                self._json(hub.fail_status, {"error": "Internal Error"})
                return
            hub.ranges.append(self.headers.get("Range", ""))
            start = 0
            asked = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
            end = len(data) - 1
            if asked:
                start = int(asked[1])
                end = int(asked[2]) if asked[2] else end
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            chunk = data[start : end + 1]
            etag = f'"{hub.sha256(repo_id, file)}"'
            self.send_response(206 if asked else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            if asked:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", etag)
            self.send_header("X-Linked-Etag", etag)
            self.send_header("X-Linked-Size", str(hub.size(repo_id, file)))
            self.end_headers()
            if not body:
                return
            if hub.drop_after is not None and hub.drops_left > 0:
                hub.drops_left -= 1
                self.wfile.write(chunk[: hub.drop_after])
                self.wfile.flush()
                self.close_connection = True  # the client sees the body end early
                return
            view = memoryview(chunk)
            for offset in range(0, len(view), 256 * 1024):
                self.wfile.write(view[offset : offset + 256 * 1024])
                if hub.throttle:
                    time.sleep(hub.throttle)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-download (a pause, Ctrl+C) is expected, not a server error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextlib.contextmanager
def running_hub() -> Iterator[FakeHub]:
    """Start a fake hub on a free loopback port; yields it with ``url`` set (HF_ENDPOINT)."""
    hub = FakeHub()
    server = _QuietServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
