"""The local llama.cpp model source, contained in a child process.

llama.cpp runs in ``nexus_desktop.llm.worker``, a separate process, so a model that segfaults,
aborts or exhausts memory takes down only that process: the call in flight raises
``ModelCrashedError`` and the next call (or ``restart()``) starts a fresh worker.  Every file is
checked by ``gguf_check`` before llama.cpp sees it.  How the worker is started and contained is
``worker_process``'s part.

The worker's stdout is read by a plain thread that hands each event to the event loop with
``call_soon_threadsafe``; no asyncio subprocess API is used, so this works the same under qasync
and plain asyncio.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from nexus_desktop.children.exits import describe_exit
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatOutput,
    ModelCrashedError,
    ModelError,
    ModelFileError,
    ReplyStats,
    RunContext,
    StreamEvent,
    StreamingSource,
    TokenEvent,
)
from nexus_desktop.llm.gguf_check import ModelInfo, inspect_model, validate_lora_adapter
from nexus_desktop.llm.vram_fit import (
    DEFAULT_RESERVE_BYTES,
    MIB,
    KvType,
    gpu_memory,
    llama_gpu_layers,
    plan_fit,
)
from nexus_desktop.llm.worker_process import (
    Event,
    WorkerExited,
    WorkerProcess,
    worker_command,
    worker_profile,
)

logger = logging.getLogger(__name__)

_CANCEL_POLL_SECONDS = 0.05


class LocalLlamaSource(StreamingSource):
    """A GGUF model served by llama.cpp in a child process; one request at a time."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        context_size: int = 4096,
        threads: int | None = None,
        gpu_layers: Literal["auto"] | int = "auto",
        kv_cache_type: KvType = "f16",
        vram_reserve_mb: int = DEFAULT_RESERVE_BYTES // MIB,
        lora_path: str | Path | None = None,
        lora_scale: float = 1.0,
        python: str = sys.executable,
        start_timeout: float = 300.0,
    ) -> None:
        self._model_path = Path(model_path).expanduser()
        self._requested_context = context_size
        self._threads = threads or max(1, (os.cpu_count() or 2) - 1)
        self._gpu_layers = gpu_layers
        """Repeating layers on the GPU (-1: all), or "auto": the most that fit beside the reserve."""
        self._kv_cache_type: KvType = kv_cache_type
        self._vram_reserve = vram_reserve_mb * MIB
        self._lora_path = Path(lora_path).expanduser() if lora_path else None
        self._lora_scale = lora_scale
        self._python = python
        self._start_timeout = start_timeout
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._worker: WorkerProcess | None = None
        self._starting: WorkerProcess | None = None
        self._closes = 0  # Counts aclose() calls, so a load that a close overtook can tell.
        self._model_info: ModelInfo | None = None
        self._hello: Event = {}
        self._loaded: Event = {}

    # --- What the UI shows ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._model_path.name

    @property
    def context_size(self) -> int:
        return int(self._loaded.get("n_ctx") or self._planned_context())

    @property
    def lora_path(self) -> Path | None:
        """The LoRA adapter this source applies (a persona's), for the model-call metrics."""
        return self._lora_path

    @property
    def supports_gpu_offload(self) -> bool:
        return bool(self._hello.get("supports_gpu_offload", False))

    @property
    def gpu_layers_used(self) -> int:
        return int(self._loaded.get("gpu_layers_used", 0))

    @property
    def load_notice(self) -> str:
        """Why the model runs other than asked (a GPU that could not take it), or ""."""
        return str(self._loaded.get("notice") or "")

    @property
    def model_info(self) -> ModelInfo | None:
        return self._model_info

    @property
    def llama_cpp_version(self) -> str | None:
        return self._hello.get("llama_cpp_version")

    @property
    def load_seconds(self) -> float | None:
        return self._loaded.get("load_seconds")

    @property
    def chat_template(self) -> str | None:
        return self._loaded.get("chat_template")

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.alive

    @property
    def pid(self) -> int | None:
        worker = self._worker or self._starting
        return worker.process.pid if worker is not None else None

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._worker.stderr_tail) if self._worker is not None else []

    # --- Life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the model file, start the worker and load the model; no-op when running."""
        async with self._lock:
            await self._ensure_worker()

    async def restart(self) -> None:
        await self.aclose()
        await self.start()

    async def aclose(self) -> None:
        """Stop the worker, including one still loading; the source can be started again."""
        self._closes += 1
        workers = [w for w in (self._worker, self._starting) if w is not None]
        self._worker = self._starting = None
        self._loaded = {}
        loop = asyncio.get_running_loop()
        for worker in workers:
            await loop.run_in_executor(None, worker.stop)

    def _planned_context(self) -> int:
        trained = self._model_info.context_length if self._model_info else None
        # Beyond the trained length replies degrade and memory is wasted.
        return min(self._requested_context, trained) if trained else self._requested_context

    def _spawn_worker(self, loop: asyncio.AbstractEventLoop) -> WorkerProcess:
        command, env = worker_command(self._python)
        profile = worker_profile(self._python, self._model_path, self._lora_path)
        return WorkerProcess(command, env, profile, loop)

    async def _ensure_worker(self) -> WorkerProcess:
        if self._worker is not None and self._worker.alive:
            return self._worker
        self._worker = None
        closes = self._closes
        loop = asyncio.get_running_loop()
        # Header checks read the file: keep them off the event loop's thread.
        info = await loop.run_in_executor(None, inspect_model, self._model_path)
        if self._lora_path is not None:
            await loop.run_in_executor(None, validate_lora_adapter, self._lora_path, info)
        self._model_info = info
        if self._closes != closes:
            raise ModelError(f"Loading {self.name} stopped because the model was closed.")
        try:
            # Off the event loop's thread: the first start probes the sandbox (a bwrap run).
            worker = await loop.run_in_executor(None, self._spawn_worker, loop)
        except OSError as error:
            raise ModelError(
                f"The model process could not start ({error}); reinstall NEXUS Desktop."
            ) from error
        self._starting = worker
        try:
            self._hello = await self._expect(worker, worker.control, "hello", "starting")
            lora = {"path": str(self._lora_path), "scale": self._lora_scale} if self._lora_path else None
            # The plan reads the GPU's memory (NVML, a probe process): off the event loop's thread.
            n_gpu_layers = await loop.run_in_executor(None, self._resolve_gpu_layers, info)
            worker.send(
                cmd="load",
                path=str(self._model_path),
                n_ctx=self._planned_context(),
                n_threads=self._threads,
                n_gpu_layers=n_gpu_layers,
                kv_type=self._kv_cache_type,
                lora=lora,
            )
            loaded = await self._expect(worker, worker.control, "loaded", f"loading {self.name}")
        except BaseException as error:
            await loop.run_in_executor(None, worker.stop)
            if self._closes != closes and isinstance(error, ModelError):
                raise ModelError(f"Loading {self.name} stopped because the model was closed.") from None
            raise
        finally:
            self._starting = None
        if self._closes != closes:
            await loop.run_in_executor(None, worker.stop)
            raise ModelError(f"Loading {self.name} stopped because the model was closed.")
        self._worker, self._loaded = worker, loaded
        return worker

    def _resolve_gpu_layers(self, info: ModelInfo) -> int:
        """llama.cpp's ``n_gpu_layers``: "auto" is ``plan_fit``'s pick (0 on a CPU-only build)."""
        n_layers = info.n_layers or 0
        if self._gpu_layers != "auto":
            return llama_gpu_layers(int(self._gpu_layers), n_layers)
        if not self.supports_gpu_offload:
            # A GPU build that found no GPU: asking for layers makes the worker say why it cannot.
            return -1 if self._hello.get("gpu_backends") else 0
        total, free = gpu_memory()
        plan = plan_fit(info, self._planned_context(), self._kv_cache_type, total, free, self._vram_reserve)
        logger.info("GPU layers for %s: %s", self.name, plan.sentence)
        return llama_gpu_layers(plan.auto_layers, n_layers)

    async def _expect(
        self, worker: WorkerProcess, queue: asyncio.Queue[Event | WorkerExited], wanted: str, doing: str
    ) -> Event:
        try:
            event = await asyncio.wait_for(queue.get(), timeout=self._start_timeout)
        except TimeoutError:
            raise ModelError(
                f"The model took longer than {self._start_timeout:.0f} s while {doing}; "
                "try a smaller model or fewer GPU layers."
            ) from None
        self._raise_for(event, worker, doing)
        assert isinstance(event, dict)
        if event.get("event") != wanted:
            raise ModelError(
                f"The model process answered {event.get('event')!r} while {doing}; reload the model."
            )
        return event

    def _raise_for(
        self, event: Event | WorkerExited, worker: WorkerProcess, doing: str, stderr_mark: int = 0
    ) -> None:
        """Turn an exit or error event into the exception the user sees; ``stderr_mark`` is the
        number of stderr lines seen when the current call began (older lines explain nothing)."""
        if isinstance(event, WorkerExited):
            last = worker.last_message(stderr_mark)
            detail = f" (last message: {last})" if last else ""
            advice = "pick another model" if doing.startswith("loading") else "reload the model to continue"
            raise ModelCrashedError(
                f"The model process {describe_exit(event.returncode)} while {doing}{detail}; "
                f"the app is fine, {advice}."
            )
        if event.get("event") != "error":
            return
        kind, message = event.get("kind"), str(event.get("message", "unknown error"))
        if kind == "load":
            raise ModelFileError(f"llama.cpp could not load {self.name} ({message}); pick another model.")
        if kind == "import":
            raise ModelError(f"llama.cpp is not usable here ({message}); reinstall llama-cpp-python.")
        if kind == "context":
            numbers = re.findall(r"\d+", message)
            needed = f" needs {numbers[0]} tokens but" if len(numbers) >= 2 else ""
            raise ModelError(
                f"The conversation{needed} does not fit the model's context of {self.context_size} tokens; "
                "start a new chat or raise the context size in Settings → Model."
            )
        if kind == "sampler":
            raise ModelError(message)
        if kind == "template":
            raise ModelError(
                f"{self.name}'s chat template refuses this conversation ({message}); "
                "pick another model, or load one with a standard chat template."
            )
        raise ModelError(f"The model failed while {doing} ({message}); try again or reload the model.")

    # --- The contract -----------------------------------------------------------------------

    async def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        async with self._lock:
            worker = await self._ensure_worker()
            request_id = f"r{next(self._ids)}"
            events: asyncio.Queue[Event | WorkerExited] = asyncio.Queue()
            worker.requests[request_id] = events
            stderr_mark = worker.stderr_lines
            finished = False
            try:
                worker.send(
                    cmd="generate",
                    id=request_id,
                    messages=[{"role": m.role, "content": m.content} for m in request.messages],
                    sampling=asdict(request.sampling),
                    json_schema=request.json_schema,
                    grammar=request.grammar,
                    continue_last=request.continue_last,
                )
                cancel_sent = False
                while True:
                    event = await self._next_event(events, context, cancel_sent)
                    if event is None:
                        worker.send(cmd="cancel", id=request_id)
                        cancel_sent = True
                        continue
                    self._raise_for(event, worker, "answering", stderr_mark)
                    assert isinstance(event, dict)
                    if event["event"] == "token":
                        yield TokenEvent(text=event["text"])
                    elif event["event"] == "done":
                        finished = True
                        yield ChatOutput(text=event["text"], stats=self._stats(event))
                        return
            except ModelCrashedError:
                self._worker = None
                raise
            finally:
                worker.requests.pop(request_id, None)
                if not finished and worker.alive:
                    worker.send(cmd="cancel", id=request_id)  # The caller walked away mid-reply.

    @staticmethod
    async def _next_event(
        events: asyncio.Queue[Event | WorkerExited], context: RunContext, cancel_sent: bool
    ) -> Event | WorkerExited | None:
        """The next event, or None as soon as the caller cancels (once)."""
        getter = asyncio.ensure_future(events.get())
        try:
            while True:
                if not cancel_sent and context.cancel.cancelled:
                    return None
                done, _pending = await asyncio.wait({getter}, timeout=_CANCEL_POLL_SECONDS)
                if done:
                    return getter.result()
        finally:
            if not getter.done():
                getter.cancel()

    def _stats(self, event: Event) -> ReplyStats:
        return ReplyStats(
            prompt_tokens=int(event["prompt_tokens"]),
            completion_tokens=int(event["completion_tokens"]),
            seconds=float(event["seconds"]),
            first_token_seconds=float(event["first_token_seconds"]),
            context_size=self.context_size,
            finish_reason=event["finish_reason"],
        )

    async def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        event = await self._ask("counting tokens", cmd="tokenize", texts=list(texts))
        return [int(count) for count in event["counts"]]

    async def last_prompt(self) -> str:
        """The prompt of the last reply as the model read it, special tokens written out: what
        the chat template made of the conversation (empty before the first reply)."""
        event = await self._ask("reading the last prompt", cmd="last_prompt")
        return str(event["text"])

    async def _ask(self, doing: str, **command: Any) -> Event:
        """Send one short command and return the worker's answer to it."""
        async with self._lock:
            worker = await self._ensure_worker()
            stderr_mark = worker.stderr_lines
            event = await worker.request(f"t{next(self._ids)}", **command)
            try:
                self._raise_for(event, worker, doing, stderr_mark)
            except ModelCrashedError:
                self._worker = None
                raise
            assert isinstance(event, dict)
            return event
