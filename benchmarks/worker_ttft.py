"""Time to first token of a reply served by a ``nexus worker`` over NATS, against the same model
called directly (``LocalLlamaSource`` in this process).

Both sides run the bundled SmolLM2 with the same settings; runs alternate (direct, worker,
direct, ...) with a different prompt each pair (so neither side gains from llama.cpp's prompt
cache), and the medians are compared.  The worker is a real ``nexus worker`` subprocess on a real
nats-server on loopback, so the overhead is the bus's: encoding, two NATS hops, the worker's
Dendrite and Axon.  Target: overhead < 10 ms.

    .venv/bin/python benchmarks/worker_ttft.py [--runs 15]

``benchmarks/bus.py`` calls ``measure()``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nexus_desktop.bus.remote_source import connect_worker_source
from nexus_desktop.bus.synapse import Connection
from nexus_desktop.llm.catalog import default_model_path
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ModelSource,
    RunContext,
    SamplingSettings,
    TokenEvent,
)
from nexus_desktop.llm.local import LocalLlamaSource
from tests.nats_support import NatsServer, start_worker

TARGET_MS = 10.0


async def _first_token_seconds(source: ModelSource, prompt: str) -> float:
    request = ChatInput(
        (ChatMessage("user", prompt),), SamplingSettings(max_tokens=4, temperature=0.0, seed=1)
    )
    run = RunContext()
    started = time.perf_counter()
    first = 0.0
    async for event in source.stream(request, run):
        if isinstance(event, TokenEvent) and not first:
            first = time.perf_counter() - started
    return first


async def _measure(url: str, runs: int) -> dict[str, float]:
    model = default_model_path()
    if model is None:
        raise SystemExit("The bundled SmolLM2 model is not installed")
    threads = max(1, min(8, (os.cpu_count() or 2) - 1))  # the settings' default, as the worker has
    direct = LocalLlamaSource(model, context_size=4096, threads=threads, gpu_layers="auto")
    await direct.start()
    with tempfile.TemporaryDirectory() as folder:
        worker = start_worker(url, "bench", Path(folder), "--serve", "model", "--model", str(model))
        remote = await connect_worker_source(Connection(url))
        try:
            direct_times: list[float] = []
            worker_times: list[float] = []
            for source in (direct, remote):  # warm-up: both processes have answered once
                await _first_token_seconds(source, "Hello there.")
            for index in range(runs):
                prompt = f"Question {index}: name one colour of the sky."
                direct_times.append(await _first_token_seconds(direct, prompt))
                worker_times.append(await _first_token_seconds(remote, prompt))
        finally:
            await remote.aclose()
            worker.stop()
            await direct.aclose()
    direct_ms = statistics.median(direct_times) * 1000
    worker_ms = statistics.median(worker_times) * 1000
    return {"direct_ms": direct_ms, "worker_ms": worker_ms, "overhead_ms": worker_ms - direct_ms}


def measure(url: str | None = None, runs: int = 15) -> dict[str, float]:
    """Median time to first token, direct and through a worker, and the overhead (ms).  With no
    ``url``, a nats-server of its own on loopback."""
    if url is not None:
        return asyncio.run(_measure(url, runs))
    with tempfile.TemporaryDirectory() as folder:
        server = NatsServer(Path(folder))
        server.start()
        try:
            return asyncio.run(_measure(server.url, runs))
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    result = measure(runs=args.runs)
    print(f"time to first token, direct:        {result['direct_ms']:.1f} ms (median)")
    print(f"time to first token, nexus worker:  {result['worker_ms']:.1f} ms (median)")
    verdict = "ok" if result["overhead_ms"] < TARGET_MS else "over target"
    print(f"overhead: {result['overhead_ms']:.1f} ms (target < {TARGET_MS:.0f} ms): {verdict}")


if __name__ == "__main__":
    main()
