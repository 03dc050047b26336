"""What containment costs: the same Python child started plainly and through NEXUS's launcher
with a module's profile (bwrap namespaces where allowed, Landlock, seccomp), side by side.

- start-up: from starting the process to its first line on stdout (a module's "ready");
- per call: one JSON line to the child and its answer back, as a module call travels.

Rounds alternate between the two, so machine noise falls on both.  Prints medians and p95s,
then what containment adds.

    .venv/bin/python benchmarks/containment_cost.py [--starts 15] [--calls 3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ECHO = """
import sys
out = sys.stdout
out.write("ready\\n"); out.flush()
for line in sys.stdin:
    out.write(line); out.flush()
"""


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * share) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()

    from nexus_desktop.children.launch import launch
    from nexus_desktop.sandbox.profile import (
        Profile,
        python_read_paths,
        system_read_paths,
        system_write_paths,
    )
    from nexus_desktop.sandbox.support import detect

    with tempfile.TemporaryDirectory() as data:
        os.environ.setdefault("NEXUS_DATA_DIR", data)
        profile = Profile(
            "benchmark module",
            read=(*system_read_paths(), *python_read_paths()),
            write=(data, *system_write_paths()),
            memory_limit_mb=512,
        )
        command = [sys.executable, "-B", "-I", "-c", ECHO]
        env = {"PATH": os.defpath, "HOME": data}

        def plain() -> subprocess.Popen[bytes]:
            return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

        def contained() -> subprocess.Popen[bytes]:
            return launch(command, profile, env=env, cwd=data, stderr=subprocess.DEVNULL)

        starters = {"plain": plain, "contained": contained}
        starts: dict[str, list[float]] = {name: [] for name in starters}
        calls: dict[str, list[float]] = {name: [] for name in starters}
        for round_number in range(args.starts + 1):
            for name, start in starters.items():
                began = time.perf_counter()
                process = start()
                assert process.stdout is not None and process.stdin is not None
                assert process.stdout.readline() == b"ready\n", f"{name} child did not start"
                if round_number:  # the first round warms the disk cache
                    starts[name].append(time.perf_counter() - began)
                if round_number == args.starts:  # one long run of calls per side, at the end
                    for _ in range(args.calls):
                        sent = time.perf_counter()
                        process.stdin.write(b'{"id":1,"op":"ping"}\n')
                        process.stdin.flush()
                        process.stdout.readline()
                        calls[name].append(time.perf_counter() - sent)
                process.stdin.close()
                process.wait()

    support = detect()
    print(f"layers here: {', '.join(support.layers()) or 'none'} (Landlock ABI {support.landlock_abi})")
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    for name in starters:
        s, c = [x * 1e3 for x in starts[name]], [x * 1e6 for x in calls[name]]
        print(
            f"{name:>9}: start p50 {statistics.median(s):6.1f} ms  p95 {percentile(s, 0.95):6.1f} ms"
            f"   call p50 {statistics.median(c):6.1f} us  p95 {percentile(c, 0.95):6.1f} us"
        )
    start_cost = (statistics.median(starts["contained"]) - statistics.median(starts["plain"])) * 1e3
    call_cost = (statistics.median(calls["contained"]) - statistics.median(calls["plain"])) * 1e6
    print(f"containment adds {start_cost:.1f} ms at start-up and {call_cost:.1f} us per call (medians)")


if __name__ == "__main__":
    main()
