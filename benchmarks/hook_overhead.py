"""What running a module out of process costs: one trivial tool call through the supervisor (JSON
over a pipe to the module's own process and back) against the same tool called in process.

Both sides run in one process, one after the other, after a warm-up; p50/p95 in microseconds,
then the ratio.  Target: out-of-process p50 under 2 ms.

    .venv/bin/python benchmarks/hook_overhead.py [--calls 2000]
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

TOOL_SOURCE = """
from nexus_desktop.modules.hookspecs import hookimpl
from nexus_desktop.modules.specs import ToolSpec


def add(a=0, b=0):
    return str(a + b)


class Plugin:
    @hookimpl
    def register_tools(self, register):
        register(ToolSpec("bench.add", "Add two numbers.", {"type": "object", "properties": {}}, add))


plugin = Plugin()
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.95) - 1] * 1e6


async def measure(calls: int, warmup: int, root: Path) -> None:
    from nexus_desktop.db.store import Store
    from nexus_desktop.modules.registry import ModuleHost
    from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor
    from nexus_desktop.modules.specs import ToolSpec
    from nexus_desktop.secrets import SecretStore
    from tests.hostile.modules import write_module

    write_module(root / "dev" / "bench", "bench", code=TOOL_SOURCE)
    store = Store(root / "nexus.db")
    host = ModuleHost(
        store.engine,
        bundled_dir=root / "none",
        user_dir=root / "user",
        developer_dir=root / "dev",
        builtins=False,
    )
    host.refresh()
    host.approve(host.review("bench"))
    supervisor = ModuleSupervisor(host, SecretStore("nexus-bench"), rate_per_minute=10**9)
    await supervisor.start()

    namespace: dict[str, object] = {}
    exec(compile(TOOL_SOURCE, "bench", "exec"), namespace)
    in_process: dict[str, ToolSpec] = {}
    namespace["plugin"].register_tools(lambda spec: in_process.__setitem__(spec.name, spec))  # type: ignore[attr-defined]

    async def local_call(name: str, arguments: dict[str, int]) -> str:
        return str(in_process[name].function(**arguments))

    sides = {"in process": local_call, "out of process": None}
    results: dict[str, tuple[float, float]] = {}
    for label in sides:
        samples = []
        for index in range(warmup + calls):
            arguments = {"a": index, "b": 1}
            started = time.perf_counter()
            if label == "in process":
                content = await local_call("bench.add", arguments)
            else:
                result = await supervisor.call_tool("bench.add", arguments)
                assert result.ok, result.error
                content = result.content
            elapsed = time.perf_counter() - started
            assert content == str(index + 1)
            if index >= warmup:
                samples.append(elapsed)
        results[label] = percentiles(samples)
    await supervisor.aclose()
    store.close()
    for label, (p50, p95) in results.items():
        print(f"{label:>15}: p50 {p50:9.1f} us   p95 {p95:9.1f} us   (N={calls})")
    ratio = results["out of process"][0] / results["in process"][0]
    print(f"ratio (out of process / in process, p50): {ratio:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as folder:
        os.environ["NEXUS_DATA_DIR"] = str(Path(folder) / "data")
        asyncio.run(measure(args.calls, args.warmup, Path(folder)))


if __name__ == "__main__":
    main()
