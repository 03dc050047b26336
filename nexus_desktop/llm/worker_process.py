"""The llama.cpp worker process seen from the app: how it is started, what it may reach, and
the queues its events go to.

The worker (``nexus_desktop.llm.worker``) runs contained (``children.supervised.ChildProcess``)
with a bare environment: llama.cpp parses files from the internet, so it may read the model,
its adapter, Python and the system's libraries, and use the GPU, and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import Any

from nexus_desktop import paths
from nexus_desktop.children.supervised import ChildProcess
from nexus_desktop.sandbox.profile import (
    Profile,
    gpu_devices,
    import_root,
    package_dir,
    python_read_paths,
    system_read_paths,
    system_write_paths,
)

_SHUTDOWN_GRACE_SECONDS = 5.0
_SPLIT_NAME = re.compile(r"(.+)-(\d{5})-of-(\d{5})\.gguf", re.IGNORECASE)
# Settings of llama.cpp, its GPU runtimes and its thread pools pass through to the worker.
_PASSED_ENV = (
    "GGML_", "LLAMA_", "CUDA_", "HIP_", "ROCR_", "GPU_", "VK_", "OMP_", "OPENBLAS_", "MKL_", "LD_LIBRARY_PATH"
)  # fmt: skip

Event = dict[str, Any]


class WorkerExited:
    """Put on every waiting queue when the worker process ends."""

    def __init__(self, returncode: int) -> None:
        self.returncode = returncode


class WorkerProcess:
    """One worker process (a contained ``ChildProcess``) and the queues its events go to."""

    def __init__(
        self, command: list[str], env: dict[str, str], profile: Profile, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.control: asyncio.Queue[Event | WorkerExited] = asyncio.Queue()
        self.requests: dict[str, asyncio.Queue[Event | WorkerExited]] = {}
        # Our own code at the other end: its stderr is worth the log at INFO, and no event budget.
        self.child = ChildProcess(
            "llama",
            command,
            profile,
            env=env,
            cwd=env.get("PYTHONPATH"),
            loop=loop,
            on_message=self._dispatch,
            on_exit=self._exited,
            flood_limit=None,
            log_level=logging.INFO,
        )
        self.process = self.child.process
        self.stderr_tail = self.child.stderr_tail

    @property
    def stderr_lines(self) -> int:
        return self.child.stderr_lines

    @property
    def returncode(self) -> int | None:
        return self.child.returncode

    def _dispatch(self, event: Event) -> None:
        request_id = event.get("id")
        queue = self.control if request_id is None else self.requests.get(str(request_id))
        if queue is not None:
            queue.put_nowait(event)

    def _exited(self, returncode: int) -> None:
        for queue in (self.control, *self.requests.values()):
            queue.put_nowait(WorkerExited(returncode))

    @property
    def alive(self) -> bool:
        return self.child.alive

    def send(self, **command: Any) -> None:
        # A gone process is not an error here: its exit event tells the waiting call.
        self.child.send(command)

    async def request(self, request_id: str, **command: Any) -> Event | WorkerExited:
        """Send ``command`` as ``request_id`` and wait for the worker's one answer (or its exit)."""
        events: asyncio.Queue[Event | WorkerExited] = asyncio.Queue()
        self.requests[request_id] = events
        try:
            self.send(id=request_id, **command)
            return await events.get()
        finally:
            self.requests.pop(request_id, None)

    def last_message(self, since: int) -> str:
        """The last line the worker wrote to stderr, when it wrote any after the first ``since``
        (older lines explain nothing about the call that began then), without its build path:
        "/long/build/path/llama-model.cpp:1328: GGML_ASSERT(...) failed" -> "llama-model.cpp:1328: ..."."""
        if self.stderr_lines <= since or not self.stderr_tail:
            return ""
        return re.sub(r"^\S*/", "", self.stderr_tail[-1])[:200]

    def stop(self) -> None:
        """Ask politely, then kill.  Blocks: run it in an executor."""
        self.child.stop({"cmd": "shutdown"}, grace=_SHUTDOWN_GRACE_SECONDS)


def worker_command(python: str, module: str = "nexus_desktop.llm.worker") -> tuple[list[str], dict[str, str]]:
    """The command line that starts the worker ``module`` (the embedder's too) with ``python``,
    and its environment."""
    cache = str(worker_cache_dir())
    # A bare environment: the user's shell may hold tokens a crafted model file has no use for.
    env = {name: value for name, value in os.environ.items() if name.startswith(_PASSED_ENV)}
    env.update(
        PATH=os.defpath,
        HOME=cache,
        LANG=os.environ.get("LANG", "C.UTF-8"),
        PYTHONPATH=import_root(),
        PYTHONIOENCODING="utf-8",
        CUDA_CACHE_PATH=cache,
        # On an abort ggml would attach gdb to print a backtrace: slow, and it buries the reason.
        GGML_NO_BACKTRACE="1",
    )
    return [python, "-m", module], env


def worker_profile(python: str, model: Path, lora: Path | None) -> Profile:
    """What the model worker may reach.  llama.cpp parses files from the internet: it may read the
    model, its adapter, Python and the system's libraries, and use the GPU; it may not write
    anything but its cache folder, reach the network, or read the user's files."""
    read = [
        *system_read_paths(),
        *python_read_paths(python),
        package_dir(),
        import_root(),
        *(str(part) for part in model_parts(model.resolve())),
    ]
    if lora is not None:
        read.append(str(lora.resolve()))
    return Profile(
        "model worker",
        read=tuple(read),
        write=(str(worker_cache_dir()), *system_write_paths()),
        devices=tuple(gpu_devices()),
    )


def model_parts(model: Path) -> list[Path]:
    """The model file, and for a split model (``name-00001-of-00003.gguf``) every part of it:
    llama.cpp opens the others itself."""
    split = _SPLIT_NAME.fullmatch(model.name)
    if split is None:
        return [model]
    prefix, count = split.group(1), int(split.group(3))
    return [model.with_name(f"{prefix}-{index:05d}-of-{count:05d}.gguf") for index in range(1, count + 1)]


def worker_cache_dir() -> Path:
    """The one folder the worker may write: GPU drivers keep compiled kernels there."""
    path = paths.data_dir() / "worker-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
