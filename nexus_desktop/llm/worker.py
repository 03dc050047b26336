"""The llama.cpp child process: ``python -m nexus_desktop.llm.worker``.

It speaks JSON lines.  Commands arrive on stdin::

    {"cmd": "load", "path", "n_ctx", "n_threads", "n_gpu_layers", "kv_type", "lora": {"path", "scale"}}
    {"cmd": "generate", "id": ..., "messages": [{"role", "content"}], "sampling": {...}, "continue_last"}
    {"cmd": "cancel", "id": ...}
    {"cmd": "tokenize", "id": ..., "texts": [...]}
    {"cmd": "last_prompt", "id": ...}
    {"cmd": "shutdown"}

``sampling`` holds ``contract.SamplingSettings``'s fields; its ``template`` (an
``InstructTemplate``'s fields, or null for the model's own chat template) writes the prompt.
``continue_last``: the last message is an unfinished reply, and the prompt ends with its text.
``lora`` may be null; ``kv_type`` ("f16", "q8_0" or "q4_0", default f16) is the KV cache's
type, and a quantised one turns flash attention on, which llama.cpp needs for a quantised V
cache.  A load with GPU layers that the GPU cannot take goes on with the CPU, and ``loaded``
says why in ``notice``.

Events leave on stdout: ``hello``, ``loaded``, ``token``, ``done``, ``tokens``, ``prompt`` and ``error``
(see ``local.py`` for their fields).  Only this protocol uses the real stdout: file descriptor 1
is pointed at stderr at start-up, so anything llama.cpp or a library prints lands in the log the
parent drains from stderr.  A reader thread takes ``cancel`` and ``shutdown`` while the main
thread generates; llama.cpp's abort callback lets a cancel stop even a long prompt evaluation.
``worker_prompt`` writes the prompt and ``worker_sampling`` sets up the samplers.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nexus_desktop.children.jsonlines import Channel
from nexus_desktop.llm.vram_fit import layers_on_gpu
from nexus_desktop.llm.worker_prompt import TemplateRefused, start_chat
from nexus_desktop.llm.worker_sampling import (
    LLAMA_SAMPLING,
    SamplerUnavailable,
    constraint,
    counting_llama_class,
    dry_arguments,
)

_EOF = {"cmd": "shutdown", "reason": "stdin closed"}
# ggml_log_level in this llama.cpp: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line.
_LOG_WARN, _LOG_ERROR, _LOG_CONTINUE = 3, 4, 5


class Protocol:
    """Events to the parent, one JSON line each (``children.jsonlines.Channel``)."""

    def __init__(self) -> None:
        self._channel = Channel()

    def send(self, event: str, **fields: Any) -> None:
        self._channel.send({"event": event, **fields})


class Cancellation:
    """Which request is running and whether it should stop; shared with the reader thread.

    A cancel can overtake its own ``generate`` (it is read while the main thread is busy), so
    cancels for requests that have not begun are remembered until they do.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: str | None = None
        self._early: set[str] = set()
        self.event = threading.Event()

    def begin(self, request_id: str) -> None:
        with self._lock:
            self._current = request_id
            if request_id in self._early:
                self._early.discard(request_id)
                self.event.set()
            else:
                self.event.clear()

    def end(self) -> None:
        with self._lock:
            self._current = None
            self.event.clear()

    def cancel(self, request_id: str | None) -> None:
        """Cancel ``request_id``, or whatever runs when it is None."""
        with self._lock:
            if request_id is None or request_id == self._current:
                if self._current is not None:
                    self.event.set()
            else:
                if len(self._early) > 1000:  # Cancels that arrived after their reply finished.
                    self._early.clear()
                self._early.add(str(request_id))


class LogTail:
    """llama.cpp log lines at warning level and above go to stderr; the last error explains a failure."""

    def __init__(self, llama_cpp: Any) -> None:
        self.errors: list[str] = []
        self._pending_level = 0
        self._stderr_fd = os.dup(2)  # Survives llama-cpp-python's own redirection during loading.

        @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
        def on_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
            level = self._pending_level if level == _LOG_CONTINUE else level
            self._pending_level = level
            if level in (_LOG_WARN, _LOG_ERROR):
                message = text.decode("utf-8", errors="replace")
                os.write(self._stderr_fd, message.encode())
                if level == _LOG_ERROR and message.strip():
                    self.errors.append(message.strip())

        self._callback = on_log  # ctypes callbacks must outlive their registration.
        llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))

    def reason(self, fallback: str) -> str:
        """The most telling error llama.cpp logged, e.g. "unknown model architecture: 'xyz'"."""
        marker = "error loading model: "
        for line in self.errors:
            if marker in line:
                return line.split(marker, 1)[1]
        return self.errors[0] if self.errors else fallback


def read_commands(
    commands: queue.Queue[dict[str, Any]], cancellation: Cancellation, protocol: Protocol
) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            name = command["cmd"]
        except (ValueError, KeyError, TypeError):
            protocol.send("error", message=f"Bad command: {line[:200]!r}", kind="protocol")
            continue
        if name == "cancel":
            cancellation.cancel(command.get("id"))
            continue
        if name == "shutdown":
            cancellation.cancel(None)
        commands.put(command)
    # The parent is gone or closed the pipe: stop whatever runs and exit.
    cancellation.cancel(None)
    commands.put(_EOF)


def keep_native_stderr() -> None:
    """Stop llama-cpp-python from pointing fds 1 and 2 at /dev/null while a model loads.

    With ``verbose=False`` it silences them, which would also swallow llama.cpp's own message
    when it aborts, the one line that explains a crash.  Its chatter is still kept out: fd 1
    already goes to stderr, and the log callback passes only warnings and errors.
    """
    from llama_cpp import _utils

    silencer = getattr(_utils, "suppress_stdout_stderr", None)
    if silencer is None:
        return
    original_init = silencer.__init__

    def never_silence(self: Any, disable: bool = True) -> None:
        original_init(self, disable=True)

    silencer.__init__ = never_silence


_GPU_BACKENDS = {"cuda": "CUDA", "vulkan": "Vulkan", "hip": "ROCm", "sycl": "SYCL", "metal": "Metal"}


def built_gpu_backends(lib_dir: Path) -> list[str]:
    """The GPU backends this llama.cpp build ships (``libggml-cuda.so`` and so on)."""
    names = {file.name.lower() for file in lib_dir.glob("*ggml-*")} if lib_dir.is_dir() else set()
    return [label for key, label in _GPU_BACKENDS.items() if any(f"ggml-{key}." in name for name in names)]


def cpu_fallback_notice(
    n_gpu_layers: int, load_error: str | None, gpu_device: bool, built_backends: list[str]
) -> str | None:
    """Why a load asking for GPU layers goes on with the CPU instead, or None when it should not.

    ``load_error``: what the load with GPU layers raised (None: it was not tried yet);
    ``gpu_device``: llama.cpp found a GPU (``llama_supports_gpu_offload``); ``built_backends``:
    the GPU backends the build ships.  A build with CUDA that finds no GPU means a driver it
    cannot use; a load that fails on a GPU is retried on the CPU, where a damaged file fails again.
    """
    if n_gpu_layers == 0:
        return None
    if load_error is None:
        if built_backends and not gpu_device:
            return (
                f"This llama.cpp build has {' and '.join(built_backends)} but found no usable GPU "
                "(the driver may be too old), so the model runs on the CPU; update the GPU driver."
            )
        return None
    if not gpu_device:
        return None  # the GPU took no part: the error is the model's
    return (
        f"The GPU could not load the model ({load_error[:160]}), so it runs on the CPU; "
        "lower the GPU layers or the context, or update the GPU driver."
    )


class Worker:
    def __init__(self, protocol: Protocol) -> None:
        import llama_cpp

        keep_native_stderr()
        self.llama_cpp = llama_cpp
        self.protocol = protocol
        self.cancellation = Cancellation()
        self.log = LogTail(llama_cpp)
        self.llm: Any = None
        self._abort_callback: Any = None
        self._shape = 0
        """Index into ``roles.SHAPES``: the first conversation shape this model's template took."""
        self.gpu_device = bool(llama_cpp.llama_supports_gpu_offload())
        self.gpu_backends = built_gpu_backends(Path(llama_cpp.__file__).parent / "lib")
        protocol.send(
            "hello",
            llama_cpp_version=llama_cpp.__version__,
            supports_gpu_offload=self.gpu_device,
            gpu_backends=self.gpu_backends,
            pid=os.getpid(),
        )

    def handle(self, command: dict[str, Any]) -> None:
        handlers = {
            "load": self.load,
            "generate": self.generate,
            "tokenize": self.tokenize,
            "last_prompt": self.last_prompt,
        }
        handler = handlers.get(command["cmd"])
        if handler is None:
            self.protocol.send(
                "error", id=command.get("id"), message=f"Unknown command {command['cmd']!r}", kind="protocol"
            )
            return
        if command["cmd"] != "load" and self.llm is None:
            self.protocol.send("error", id=command.get("id"), message="No model is loaded.", kind="state")
            return
        try:
            handler(command)
        except Exception as error:  # Report and keep serving; the parent decides what to do.
            self.protocol.send(
                "error", id=command.get("id"), message=f"{type(error).__name__}: {error}", kind="internal"
            )

    def _open(self, command: dict[str, Any], n_gpu_layers: int) -> Any:
        llama_cpp = self.llama_cpp
        lora = command.get("lora") or {}
        kv_type = getattr(llama_cpp, f"GGML_TYPE_{str(command.get('kv_type') or 'f16').upper()}")
        self.log.errors.clear()
        return counting_llama_class(llama_cpp)(
            model_path=command["path"],
            n_ctx=int(command["n_ctx"]),
            n_threads=int(command["n_threads"]),
            n_threads_batch=int(command["n_threads"]),
            n_gpu_layers=n_gpu_layers,
            type_k=kv_type,
            type_v=kv_type,
            flash_attn=kv_type != llama_cpp.GGML_TYPE_F16,
            lora_path=lora.get("path"),
            lora_scale=float(lora.get("scale", 1.0)),
            verbose=False,
        )

    def load(self, command: dict[str, Any]) -> None:
        llama_cpp = self.llama_cpp
        started = time.perf_counter()
        requested_gpu = int(command["n_gpu_layers"])
        notice = cpu_fallback_notice(requested_gpu, None, self.gpu_device, self.gpu_backends)
        if notice is not None:
            requested_gpu = 0
        try:
            llm = self._open(command, requested_gpu)
        except Exception as error:
            reason = self.log.reason(str(error))
            notice = cpu_fallback_notice(requested_gpu, reason, self.gpu_device, self.gpu_backends)
            if notice is None:
                self.protocol.send("error", message=reason, kind="load")
                return
            requested_gpu = 0
            try:
                llm = self._open(command, requested_gpu)
            except Exception as cpu_error:
                self.protocol.send("error", message=self.log.reason(str(cpu_error)), kind="load")
                return
        self.llm = llm
        self._shape = 0

        @llama_cpp.ggml_abort_callback  # type: ignore[untyped-decorator]
        def should_abort(_data: ctypes.c_void_p) -> bool:
            return self.cancellation.event.is_set()

        self._abort_callback = should_abort
        n_layers = int(llama_cpp.llama_model_n_layer(llm.model))
        offloaded = layers_on_gpu(requested_gpu, n_layers) if self.gpu_device else 0
        self.protocol.send(
            "loaded",
            n_ctx=int(llm.n_ctx()),
            n_layers=n_layers,
            gpu_layers_used=offloaded,
            notice=notice or "",
            load_seconds=time.perf_counter() - started,
            chat_template=llm.metadata.get("tokenizer.chat_template"),
            chat_format=llm.chat_format,
        )

    def _watch_for_abort(self, on: bool) -> None:
        """Let a cancel interrupt prompt evaluation.

        ggml calls the abort callback for every graph node, so it costs about 7% of generation
        speed; once tokens flow, the loop checks for a cancel between tokens instead.
        """
        callback = self._abort_callback if on else self.llama_cpp.ggml_abort_callback(0)
        self.llama_cpp.llama_set_abort_callback(self.llm._ctx.ctx, callback, None)

    def generate(self, command: dict[str, Any]) -> None:
        request_id = str(command["id"])
        sampling = command.get("sampling") or {}
        llm = self.llm
        self.cancellation.begin(request_id)
        started = time.perf_counter()
        first_token_at: float | None = None
        last_token_at = started
        parts: list[str] = []
        finish_reason = "stop"
        llm.counts = [0, 0]
        stream: Any = None
        try:
            self._watch_for_abort(True)
            llm.dry = dry_arguments(self.llama_cpp, sampling, int(llm.n_ctx()))
            stream, self._shape = start_chat(
                llm,
                self._shape,
                list(command["messages"]),
                sampling.get("template"),
                bool(command.get("continue_last")),
                stream=True,
                **{name: sampling[name] for name in LLAMA_SAMPLING if name in sampling},
                # llama-cpp-python derives a missing seed from the last one: the same "random" replies.
                seed=sampling.get("seed") if sampling.get("seed") is not None else random.randrange(2**31),
                stop=list(sampling.get("stop") or []),
                **constraint(command),
            )
            for chunk in stream:
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content")
                if text:
                    last_token_at = time.perf_counter()
                    if first_token_at is None:
                        first_token_at = last_token_at
                        self._watch_for_abort(False)
                    parts.append(text)
                    self.protocol.send("token", id=request_id, text=text)
                finish_reason = choice.get("finish_reason") or finish_reason
                if self.cancellation.event.is_set():
                    break
        except TemplateRefused as error:
            self.protocol.send("error", id=request_id, message=str(error), kind="template")
            return
        except SamplerUnavailable as error:
            self.protocol.send("error", id=request_id, message=str(error), kind="sampler")
            return
        except ValueError as error:
            if "exceed context window" not in str(error):
                raise
            self.protocol.send("error", id=request_id, message=str(error), kind="context")
            return
        except RuntimeError:
            # llama_decode reports an abort as an error; a cancel is not a failure.
            if not self.cancellation.event.is_set():
                raise
        finally:
            if stream is not None:
                stream.close()  # Finish llama.cpp's generator before the next command.
            llm.dry = None
            cancelled = self.cancellation.event.is_set()
            self.cancellation.end()
        if first_token_at is None:
            first_token_at = last_token_at = time.perf_counter()
        self.protocol.send(
            "done",
            id=request_id,
            text="".join(parts),
            prompt_tokens=llm.counts[0],
            completion_tokens=llm.counts[1],
            first_token_seconds=first_token_at - started,
            seconds=last_token_at - first_token_at,
            finish_reason="cancelled" if cancelled else finish_reason,
        )

    def last_prompt(self, command: dict[str, Any]) -> None:
        """The prompt of the last reply as the model's tokenizer reads it back, special tokens
        included: the text the chat template made."""
        tokens = self.llm.last_prompt
        text = self.llm.detokenize(tokens, special=True).decode("utf-8", errors="replace")
        self.protocol.send("prompt", id=command.get("id"), text=text)

    def tokenize(self, command: dict[str, Any]) -> None:
        # special=True matches how the chat template's prompt is tokenized.
        counts = [
            len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
            for text in command["texts"]
        ]
        self.protocol.send("tokens", id=command.get("id"), counts=counts)


def main() -> int:
    protocol = Protocol()
    try:
        worker = Worker(protocol)
    except Exception as error:  # llama_cpp missing or broken: say so, then exit.
        protocol.send("error", message=f"{type(error).__name__}: {error}", kind="import")
        return 2
    commands: queue.Queue[dict[str, Any]] = queue.Queue()
    reader = threading.Thread(
        target=read_commands, args=(commands, worker.cancellation, protocol), name="commands", daemon=True
    )
    reader.start()
    while True:
        command = commands.get()
        if command["cmd"] == "shutdown":
            return 0
        worker.handle(command)


if __name__ == "__main__":
    sys.exit(main())
