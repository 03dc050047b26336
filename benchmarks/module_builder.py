"""The module builder on a fixed suite of 21 graded module requests, per code source.

    .venv/bin/python benchmarks/module_builder.py [--sources replay,default] [--limit N]
        [--default-limit 2] [--model PATH.gguf] [--check-suite]

The suite (``benchmarks/module_requests/``): pure functions, parsing, a local HTTP API with
pagination, APIs needing a key (query, header, a token to refresh) and rate limits and retries,
easiest first.  Each request is built through the app's own builder (``BuildService.build``: the
task router, plan, generate, sandboxed validation, up to 3 repair rounds) in a throwaway data
folder; a build that ends awaiting approval is approved, its credentials entered as a user
would, and its acceptance checks (written for the benchmark, never shown to the generator) call
its tools through ``ModuleService.call_tool`` against the suite's API server on 127.0.0.1.

Sources:
- ``replay``: the scripted "strong" source, an OpenAI-compatible server on loopback
  (``tests/replay_server.py``) replaying recorded good answers (the suite's ``answer`` files),
  standing in for a remote provider.  The pipeline must reach 100% with it.
- ``default``: the bundled SmolLM2-135M on the CPU; ``--default-limit`` requests (its builds take
  minutes each).
- ``--model PATH``: a larger local GGUF (a 7B coder model on a GPU), as ``local: NAME``.

Reported per source: acceptance pass rate (requests whose every check passed), builds that
passed validation, repair rounds used, and time per build; the last line states them together.
``--check-suite`` installs the recorded answers directly (no generator) and runs the checks:
the suite's own sanity check.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.module_requests import Request, suite  # noqa: E402
from benchmarks.module_requests.acceptance import Acceptance, accept  # noqa: E402
from benchmarks.module_requests.api_server import ApiServer  # noqa: E402
from nexus_desktop.builder.output import answer_json  # noqa: E402
from nexus_desktop.builder.service import BuildService  # noqa: E402
from nexus_desktop.builder.template import CONFTEST, CONFTEST_PATH  # noqa: E402
from nexus_desktop.db.store import Store  # noqa: E402
from nexus_desktop.llm.catalog import default_model_path  # noqa: E402
from nexus_desktop.modules.service import ModuleService  # noqa: E402
from nexus_desktop.providers import TaskRouter  # noqa: E402
from nexus_desktop.secrets import SecretStore  # noqa: E402
from nexus_desktop.settings import Settings  # noqa: E402
from tests.replay_server import MODEL, ReplayServer, running_replay_server  # noqa: E402


@dataclass(frozen=True)
class Outcome:
    request: Request
    status: str
    repair_rounds: int
    build_seconds: float
    acceptance: Acceptance | None

    @property
    def accepted(self) -> bool:
        return self.acceptance is not None and self.acceptance.ok


@dataclass(frozen=True)
class SourceRun:
    label: str
    source_name: str
    outcomes: list[Outcome]

    def line(self) -> str:
        done = len(self.outcomes)
        if not done:
            return f"{self.label}: nothing built"
        accepted = sum(o.accepted for o in self.outcomes)
        valid = sum(o.status == "awaiting_approval" for o in self.outcomes)
        repairs = statistics.mean(o.repair_rounds for o in self.outcomes)
        seconds = statistics.median(o.build_seconds for o in self.outcomes)
        return (
            f"{self.label} ({self.source_name}): {accepted}/{done} accepted ({accepted / done:.0%}), "
            f"{valid}/{done} passed validation, {repairs:.1f} repair rounds per build, "
            f"{seconds:.1f} s per build (median)"
        )


async def open_services(folder: Path) -> tuple[Store, ModuleService]:
    store = Store(folder / "nexus.db")
    modules = ModuleService(
        store.engine,
        SecretStore(f"nexus-bench-{uuid.uuid4().hex[:8]}", timeout=5),
        bundled_dir=folder / "no-bundled",
        user_dir=folder / "modules",
        environ={},
    )
    await modules.start()
    return store, modules


async def run_source(
    label: str, settings: Settings, prefer: str | None, requests: list[Request], replay: ReplayServer | None
) -> SourceRun:
    folder = Path(tempfile.mkdtemp(prefix=f"nexus-bench-{label}-"))
    store, modules = await open_services(folder)
    router = TaskRouter(store.engine, lambda: settings, lambda _key: None)
    builds = BuildService(store.engine, modules, lambda: router, staging_dir=folder / "builds")
    outcomes: list[Outcome] = []
    source_name = ""
    try:
        for request in requests:
            if replay is not None:
                replay.script(request.description, [answer_json(request.answer, "Recorded good answer.")])
            started = time.monotonic()
            view = await builds.build(request.description, source=prefer)
            took = time.monotonic() - started
            source_name = view.source_name or source_name
            acceptance = await accept(modules, request) if view.status == "awaiting_approval" else None
            outcome = Outcome(request, view.status, view.repair_rounds, took, acceptance)
            outcomes.append(outcome)
            print_outcome(label, outcome, view.reason)
    finally:
        await builds.aclose()
        await modules.aclose()
        store.close()
    return SourceRun(label, source_name, outcomes)


def print_outcome(label: str, outcome: Outcome, reason: str) -> None:
    checks = f"{outcome.acceptance.passed}/{outcome.acceptance.total}" if outcome.acceptance else "-"
    print(
        f"  {label:<8} {outcome.request.category:<10} L{outcome.request.level} {outcome.request.name:<30} "
        f"{outcome.status:<18} repairs {outcome.repair_rounds}  {outcome.build_seconds:6.1f} s  "
        f"checks {checks}",
        flush=True,
    )
    if outcome.acceptance and outcome.acceptance.failures:
        print(f"           first failing check: {outcome.acceptance.failures[0]}")
    elif outcome.status != "awaiting_approval":
        print(f"           {reason[:200]}")


async def check_suite(requests: list[Request]) -> int:
    """Install each recorded answer as it is and run its checks: every one must pass."""
    folder = Path(tempfile.mkdtemp(prefix="nexus-bench-suite-"))
    store, modules = await open_services(folder)
    failed = 0
    try:
        for request in requests:
            source = folder / "answers" / request.name
            for relative, text in {**request.answer, CONFTEST_PATH: CONFTEST}.items():
                (source / relative).parent.mkdir(parents=True, exist_ok=True)
                (source / relative).write_text(text, encoding="utf-8")
            await modules.install(source)
            report = await modules.validate(request.name)
            result = await accept(modules, request) if report["ok"] else None
            ok = result is not None and result.ok
            failed += not ok
            shown = (
                f"{result.passed}/{result.total} checks" if result else f"validation: {report.get('error')}"
            )
            print(f"  {request.category:<10} {request.name:<30} {'ok' if ok else 'FAILED'} {shown}")
    finally:
        await modules.aclose()
        store.close()
    print(f"suite: {len(requests) - failed}/{len(requests)} recorded answers pass their acceptance checks")
    return 1 if failed else 0


async def main_async(args: argparse.Namespace) -> int:
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    with ApiServer() as api, running_replay_server() as replay:
        requests = suite(api.base_url)
        if args.limit:
            requests = requests[: args.limit]
        if args.check_suite:
            return await check_suite(requests)
        print(f"{len(requests)} requests; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        runs: list[SourceRun] = []
        for source in sources:
            if source == "replay":
                settings = Settings(remote_base_url=replay.base_url, remote_model=MODEL)
                runs.append(await run_source("replay", settings, None, requests, replay))
            elif source == "default":
                # Named, so models of the user's own never stand in for it.
                chosen = requests[: args.default_limit]
                prefer = f"default: {default_model_path().name}"
                runs.append(await run_source("default", Settings(), prefer, chosen, None))
            else:
                raise SystemExit(f"Unknown source {source!r}; use replay and/or default (or --model PATH).")
        if args.model:
            model = Path(args.model).expanduser().resolve()
            settings = Settings(models_dir=str(model.parent))
            runs.append(await run_source("local", settings, f"local: {model.name}", requests, None))
    print()
    for run in runs:
        print(run.line())
    if not args.model:
        print("larger model on a GPU: not measured: no GPU on this machine (pass --model PATH on one)")
    replay_run = next((run for run in runs if run.label == "replay"), None)
    if replay_run is not None and not all(o.accepted for o in replay_run.outcomes):
        print("FAILED: the pipeline must pass every request with the replay source")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sources", default="replay,default", help="replay, default, or both (comma-separated)"
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N requests (0: all 21)")
    parser.add_argument("--default-limit", type=int, default=2, help="requests the default model builds")
    parser.add_argument("--model", default="", help="a larger local GGUF to measure as a third source")
    parser.add_argument("--check-suite", action="store_true", help="check the recorded answers only")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
