"""Text to vectors with llama.cpp, in a contained child process (``embed_worker``).

The child is started the way the chat model's worker is (``llm.worker_process``: the one launcher,
the same containment), lazily on the first call, and stopped by ``aclose``.  A crash there raises
``EmbedderCrashedError`` for the call in flight; the next call starts a fresh child.  Nothing here
blocks the event loop: file checks and process starts run in an executor, answers arrive through
the supervisor's reader thread.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path

from nexus_desktop.children.exits import describe_exit
from nexus_desktop.llm.contract import ModelError
from nexus_desktop.llm.gguf_check import inspect_model
from nexus_desktop.llm.worker_process import (
    Event,
    WorkerExited,
    WorkerProcess,
    worker_command,
    worker_profile,
)

EMBED_MODULE = "nexus_desktop.engram.embed_worker"
METHOD = "mean-centred-1"
"""How the child pools and centres vectors (``embed_worker``): part of each memory's model name,
so vectors made another way are never compared with these."""
START_TIMEOUT_SECONDS = 60.0
EMBED_TIMEOUT_SECONDS = 120.0

Vector = array.array  # of "f": float32, unit length


class EmbedderError(RuntimeError):
    """Embeddings could not be made; ``str()`` says why and what to do."""


class EmbedderCrashedError(EmbedderError):
    """The embedding process died while working; the next call starts a new one."""


class Embedder:
    def __init__(
        self,
        model_path: Path | None,
        *,
        threads: int = 1,
        python: str = sys.executable,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        """``model_path``: a GGUF model (None: none is installed, and every call says so);
        ``threads``: one by default, so memory lookups do not take the CPU from a reply."""
        self.model_path = model_path
        self._threads = threads
        self._python = python
        self._start_timeout = start_timeout
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._worker: WorkerProcess | None = None

    @property
    def model_name(self) -> str:
        """Which model and method made a vector: memories keep it beside their embedding."""
        name = self.model_path.name if self.model_path is not None else "none"
        return f"{name}#{METHOD}"

    @property
    def pid(self) -> int | None:
        return self._worker.process.pid if self._worker is not None else None

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One float32 vector of unit length per text."""
        if not texts:
            return []
        async with self._lock:
            worker = await self._ensure_worker()
            mark = worker.stderr_lines
            asked = worker.request(f"e{next(self._ids)}", cmd="embed", texts=list(texts))
            event = await self._next(asked, EMBED_TIMEOUT_SECONDS, "embedding text")
            self._raise_for(event, worker, "embedding text", mark)
            assert isinstance(event, dict)
            return [array.array("f", vector) for vector in event["vectors"]]

    async def aclose(self) -> None:
        """Stop the child (a later call starts a new one)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.get_running_loop().run_in_executor(None, worker.stop)

    async def _ensure_worker(self) -> WorkerProcess:
        if self._worker is not None and self._worker.alive:
            return self._worker
        self._worker = None
        if self.model_path is None:
            raise EmbedderError(
                "No model is installed to make embeddings; reinstall NEXUS Desktop (it bundles SmolLM2)."
            )
        loop = asyncio.get_running_loop()
        model = self.model_path
        try:
            # Checks the header before llama.cpp sees the file; reads it, so off the loop's thread.
            await loop.run_in_executor(None, inspect_model, model)
        except ModelError as error:
            raise EmbedderError(f"The embedding model cannot be used: {error}") from error
        try:
            worker = await loop.run_in_executor(None, self._spawn, loop)
        except OSError as error:
            raise EmbedderError(
                f"The embedding process could not start ({error}); reinstall NEXUS Desktop."
            ) from error
        try:
            for command, wanted, doing in (
                (None, "hello", "starting"),
                (
                    {"cmd": "load", "path": str(model), "n_threads": self._threads},
                    "loaded",
                    "loading its model",
                ),
            ):
                if command is not None:
                    worker.send(**command)
                event = await self._next(worker.control.get(), self._start_timeout, doing)
                self._raise_for(event, worker, doing)
                assert isinstance(event, dict)
                if event.get("event") != wanted:
                    raise EmbedderError(
                        f"The embedding process answered {event.get('event')!r} while {doing}."
                    )
        except BaseException:
            await loop.run_in_executor(None, worker.stop)
            raise
        self._worker = worker
        return worker

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> WorkerProcess:
        assert self.model_path is not None
        command, env = worker_command(self._python, EMBED_MODULE)
        # The chat worker's containment: it may read the model and Python, and nothing of the user's.
        profile = worker_profile(self._python, self.model_path, None)
        return WorkerProcess(command, env, profile, loop)

    @staticmethod
    async def _next(
        answer: Awaitable[Event | WorkerExited], timeout: float, doing: str
    ) -> Event | WorkerExited:
        try:
            return await asyncio.wait_for(answer, timeout=timeout)
        except TimeoutError:
            raise EmbedderError(
                f"The embedding process took longer than {timeout:.0f} s while {doing}."
            ) from None

    def _raise_for(
        self, event: Event | WorkerExited, worker: WorkerProcess, doing: str, mark: int = 0
    ) -> None:
        if isinstance(event, WorkerExited):
            self._worker = None
            last = worker.last_message(mark)
            detail = f" (last message: {last})" if last else ""
            raise EmbedderCrashedError(
                f"The embedding process {describe_exit(event.returncode)} while {doing}{detail}; "
                "the app is fine, and memories are left out until it starts again."
            )
        if event.get("event") == "error":
            raise EmbedderError(
                f"The embedding process failed while {doing} ({event.get('message', 'unknown error')})."
            )
