"""Unloading and reloading the model, as game mode and the keep-alive do, 50 times over.

The app side is the app's own ``LocalLlamaSource`` with the bundled SmolLM2: ``start()`` (a worker
process, sandboxed as in the app, loads the model) then ``aclose()`` (the worker is stopped).
Beside it, the floor: ``llama_cpp.Llama`` loading and closing the same model in one process
that stays alive (no process start, no sandbox), half its rounds before the app's and half after.

Measured each cycle:
- reload: ``start()`` until the model is loaded; unload: ``aclose()`` until it returns;
- freed: from the start of ``aclose()`` until no worker process is left (a process's memory is
  released as it exits) and, on an NVIDIA GPU read through NVML, the GPU's used memory is back
  within 64 MiB of before the load; beside it, how much the system's available memory rose from
  just before the unload to half a second after, against the worker's anonymous memory (heap,
  KV cache, buffers: its mapped model file stays in the page cache, available already).  That
  witness is weak at this size: on the 2-core VM of 2026-12, a plain process holding 100 MiB of
  written memory raised the available figure by 0-4 MiB when it exited (500 MiB: by 287 MiB);
- this process's resident size, Python objects, open files and threads after the unload, and the
  system's available memory.

Targets: freed within 3 s on every cycle; nothing grows over the cycles: from cycle 10 to the
last, this process's resident size (after ``malloc_trim``) by under 4 MiB and its Python objects by
under 200; its open files and threads not at all; no worker process left.

    .venv/bin/python benchmarks/model_swap.py [--cycles 50] [--raw-cycles 10]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nexus_desktop.llm.catalog import default_model_path
from nexus_desktop.llm.hardware import GpuProbeError, read_nvml
from nexus_desktop.llm.local import LocalLlamaSource

MIB = 1024 * 1024
CONTEXT = 2048
THREADS = 1
FREED_TARGET_SECONDS = 3.0
RSS_GROWTH_TARGET_MIB = 4.0
OBJECTS_GROWTH_TARGET = 200
VRAM_SLACK_MIB = 64
AVAILABLE_SETTLE_SECONDS = 0.5
SAMPLE_CYCLES = {1, 2, 5, 10, 20, 30, 40, 50}

RAW = """
import json, sys, time
from llama_cpp import Llama
path, cycles, context, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
loads, closes = [], []
for _ in range(cycles):
    started = time.perf_counter()
    llm = Llama(model_path=path, n_ctx=context, n_threads=threads, n_gpu_layers=-1, verbose=False)
    loads.append(time.perf_counter() - started)
    started = time.perf_counter()
    llm.close()
    closes.append(time.perf_counter() - started)
print(json.dumps({"loads": loads, "closes": closes}))
"""


@dataclass
class Cycle:
    number: int
    reload_s: float
    unload_s: float
    freed_s: float | None
    """None: not freed within the target."""
    not_freed: str
    """Why not, when not."""
    worker_anonymous_mib: float
    """The worker's heap, KV cache and buffers while loaded: what its exit hands back."""
    available_gain_mib: float
    """The system's available memory half a second after the unload began, against just before."""
    parent_rss_mib: float
    parent_objects: int
    parent_files: int
    parent_threads: int
    available_mib: float
    vram_used_mib: float | None


def vram_used_mib() -> float | None:
    """Used memory over every NVIDIA GPU, through NVML; None where NVML reads none."""
    try:
        gpus = read_nvml()
    except GpuProbeError:
        return None
    return float(sum(gpu.vram_total_mb - gpu.vram_free_mb for gpu in gpus)) if gpus else None


def available_mib() -> float:
    return psutil.virtual_memory().available / MIB


def worker_anonymous_mib(me: psutil.Process) -> float:
    """The worker processes' anonymous memory: what their exit hands back to the system.

    Their mapped model file and libraries stay in the page cache, which counts as available
    already, so only anonymous memory (heap, KV cache, buffers) comes back; where /proc has no
    smaps_rollup the unique set size stands in for it.
    """
    total = 0
    for child in me.children(recursive=True):
        try:
            rollup = Path(f"/proc/{child.pid}/smaps_rollup")
            if rollup.exists():
                kib = re.search(r"^Anonymous:\s+(\d+) kB", rollup.read_text(), re.MULTILINE)
                total += int(kib.group(1)) * 1024 if kib else 0
            else:
                total += child.memory_full_info().uss
        except (OSError, psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / MIB


def live_children(me: psutil.Process) -> list[psutil.Process]:
    alive = []
    for child in me.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


def trimmed_rss_mib(me: psutil.Process) -> float:
    """This process's resident size once the C allocator has handed its free pages back.

    Without the trim, glibc keeps freed heap for reuse and the size moves in 4 MiB steps that
    say nothing about what is still held.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return me.memory_info().rss / MIB


def python_objects() -> int:
    """Objects the garbage collector tracks, less this benchmark's own records (one per cycle)."""
    gc.collect()
    return sum(1 for item in gc.get_objects() if not isinstance(item, Cycle))


async def wait_until_freed(
    me: psutil.Process, started: float, vram_before: float | None
) -> tuple[float | None, str]:
    """Seconds from ``started`` until the worker is gone and the GPU's memory is back; else why not.

    A process's memory is released as it exits, before its parent can reap it, so "gone" is
    "freed" for RAM; the system's available memory is recorded beside it as a second witness.
    """
    while True:
        vram_now = vram_used_mib()
        vram_over = (
            0.0 if vram_before is None or vram_now is None else vram_now - vram_before - VRAM_SLACK_MIB
        )
        if live_children(me):
            why = "a worker process still runs"
        elif vram_over > 0:
            why = f"VRAM {vram_over:.0f} MiB above"
        else:
            return time.perf_counter() - started, ""
        if time.perf_counter() - started > FREED_TARGET_SECONDS:
            return None, why
        await asyncio.sleep(0.01)


async def one_cycle(source: LocalLlamaSource, number: int, me: psutil.Process) -> Cycle:
    vram_before = vram_used_mib()
    started = time.perf_counter()
    await source.start()
    reload_s = time.perf_counter() - started
    worker_anonymous = worker_anonymous_mib(me)
    available_loaded = available_mib()
    started = time.perf_counter()
    await source.aclose()
    unload_s = time.perf_counter() - started
    freed_s, not_freed = await wait_until_freed(me, started, vram_before)
    await asyncio.sleep(max(0.0, started + AVAILABLE_SETTLE_SECONDS - time.perf_counter()))
    return Cycle(
        number,
        reload_s,
        unload_s,
        freed_s,
        not_freed,
        worker_anonymous,
        available_mib() - available_loaded,
        trimmed_rss_mib(me),
        python_objects(),
        me.num_fds() if hasattr(me, "num_fds") else me.num_handles(),
        me.num_threads(),
        available_mib(),
        vram_used_mib(),
    )


def raw_rounds(model: Path, cycles: int) -> tuple[list[float], list[float]]:
    result = subprocess.run(
        [sys.executable, "-c", RAW, str(model), str(cycles), str(CONTEXT), str(THREADS)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures["loads"], figures["closes"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def median_p95(samples: list[float]) -> str:
    ordered = sorted(samples)
    nearest_rank = min(len(ordered), math.ceil(len(ordered) * 0.95))
    return f"median {ms(statistics.median(ordered))}, p95 {ms(ordered[nearest_rank - 1])}"


def print_table(cycles: list[Cycle]) -> None:
    print(
        f"{'cycle':>5} {'reload':>8} {'unload':>8} {'freed':>8} {'worker':>8} {'gained':>9} {'this RSS':>9} "
        f"{'objects':>8} {'files':>5} {'threads':>7} {'available':>10} {'VRAM used':>10}"
    )
    for cycle in cycles:
        if cycle.number not in SAMPLE_CYCLES and cycle is not cycles[-1] and cycle.freed_s is not None:
            continue
        freed = ms(cycle.freed_s) if cycle.freed_s is not None else "> 3 s"
        vram = f"{cycle.vram_used_mib:.0f} MiB" if cycle.vram_used_mib is not None else "-"
        print(
            f"{cycle.number:>5} {ms(cycle.reload_s):>8} {ms(cycle.unload_s):>8} {freed:>8} "
            f"{cycle.worker_anonymous_mib:>4.0f} MiB {cycle.available_gain_mib:>+5.0f} MiB "
            f"{cycle.parent_rss_mib:>5.1f} MiB "
            f"{cycle.parent_objects:>8} {cycle.parent_files:>5} {cycle.parent_threads:>7} "
            f"{cycle.available_mib:>6.0f} MiB {vram:>10}"
            + (f"  ({cycle.not_freed})" if cycle.not_freed else "")
        )


async def app_cycles(model: Path, count: int) -> list[Cycle]:
    me = psutil.Process()
    source = LocalLlamaSource(model, context_size=CONTEXT, threads=THREADS, gpu_layers=-1)
    cycles = []
    for number in range(1, count + 1):
        cycles.append(await one_cycle(source, number, me))
    return cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--raw-cycles", type=int, default=10)
    args = parser.parse_args()
    model = default_model_path()
    if model is None:
        sys.exit("The bundled SmolLM2 model is missing: run installers/setup.sh first.")

    raw_loads, raw_closes = raw_rounds(model, args.raw_cycles // 2)
    cycles = asyncio.run(app_cycles(model, args.cycles))
    more_loads, more_closes = raw_rounds(model, args.raw_cycles - args.raw_cycles // 2)
    raw_loads += more_loads
    raw_closes += more_closes

    print(
        f"model: {model.name} · context {CONTEXT} · threads {THREADS} · load average {os.getloadavg()[0]:.1f}"
    )
    print_table(cycles)
    reloads = [c.reload_s for c in cycles]
    unloads = [c.unload_s for c in cycles]
    print(f"reload, NEXUS worker (start):       {median_p95(reloads)}")
    print(f"load, llama_cpp.Llama in-process:   {median_p95(raw_loads)}")
    ratio = statistics.median(reloads) / statistics.median(raw_loads)
    print(f"reload / in-process load (medians): {ratio:.1f}x")
    print(f"unload, NEXUS worker (aclose):      {median_p95(unloads)}")
    print(f"close, llama_cpp.Llama in-process:  {median_p95(raw_closes)}")

    freed = [c.freed_s for c in cycles]
    missed = [c.number for c in cycles if c.freed_s is None]
    slowest = max((s for s in freed if s is not None), default=0.0)
    verdict = "met" if not missed else f"missed on cycles {missed}"
    print(f"memory freed after unload (target <= 3 s): slowest {ms(slowest)}: {verdict}")

    first = cycles[min(9, len(cycles) - 1)]  # after warm-up: imports, thread pools, caches
    last = cycles[-1]
    growth = last.parent_rss_mib - first.parent_rss_mib
    grew = (
        growth >= RSS_GROWTH_TARGET_MIB
        or last.parent_objects - first.parent_objects > OBJECTS_GROWTH_TARGET
        or last.parent_files != first.parent_files
        or last.parent_threads != first.parent_threads
        or bool(live_children(psutil.Process()))
        or (
            first.vram_used_mib is not None
            and last.vram_used_mib is not None
            and last.vram_used_mib - first.vram_used_mib > VRAM_SLACK_MIB
        )
    )
    print(
        f"this process, cycle {first.number} -> {last.number}: RSS {first.parent_rss_mib:.1f} -> "
        f"{last.parent_rss_mib:.1f} MiB ({growth:+.1f}), Python objects {first.parent_objects} -> "
        f"{last.parent_objects}, open files {first.parent_files} -> {last.parent_files}, "
        f"threads {first.parent_threads} -> {last.parent_threads}"
    )
    gains = [c.available_gain_mib for c in cycles]
    anonymous = statistics.median(c.worker_anonymous_mib for c in cycles)
    print(
        f"available memory 0.5 s after each unload: median {statistics.median(gains):+.0f} MiB "
        f"(min {min(gains):+.0f}, max {max(gains):+.0f}) for the worker's {anonymous:.0f} MiB; "
        f"other processes move it too: cycle {first.number} -> {last.number}: "
        f"{first.available_mib:.0f} -> {last.available_mib:.0f} MiB"
    )
    if last.vram_used_mib is None or first.vram_used_mib is None:
        try:
            read_nvml()
            reason = "no GPU"
        except GpuProbeError as error:
            reason = f"no GPU ({error})"
        print(f"VRAM: not measured: {reason}")
    else:
        print(
            f"VRAM used after unload, cycle {first.number} -> {last.number}: "
            f"{first.vram_used_mib:.0f} -> {last.vram_used_mib:.0f} MiB"
        )
    print(
        f"nothing grows over {len(cycles)} cycles (RSS < +{RSS_GROWTH_TARGET_MIB:.0f} MiB, objects < "
        f"+{OBJECTS_GROWTH_TARGET}, same files and threads, no process left): {'missed' if grew else 'met'}"
    )


if __name__ == "__main__":
    main()
