"""What the governor's reply pipeline adds to a reply: the same reply through ``ChatService.send``
with a real policy (a daily token budget, a reply cap, cooldowns and prerequisites), its budget
reserved and settled in SQLite, every model call recorded (``MetricsRecorder``) and two
interceptor modules in their own processes (one filters the message, one is asked for an answer
and told when the reply finished), against a direct call of the same source.

The source answers at once from this process (eight tokens), so what is timed is the pipeline,
not a model.  A third side, the chat service with no policy and no modules, separates the chat's
own work (saving the messages, building the prompt) from the governor's.  The sides run
interleaved, one reply each per round, after a warm-up; a fresh chat per reply (made untimed),
so every prompt is the same size.  Target: governed minus direct, p95 < 5 ms.

    .venv/bin/python benchmarks/governor_overhead.py [--replies 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ReplyStats,
    RunContext,
    StreamEvent,
    StreamingSource,
    TokenEvent,
)

FILTER_SOURCE = """
from nexus_desktop.modules.hookspecs import hookimpl


class Plugin:
    @hookimpl
    def message_will_send(self, message, context):
        return message.replace("Hello", "Hello there")


plugin = Plugin()
"""
WATCHER_SOURCE = """
from nexus_desktop.modules.hookspecs import hookimpl

seen = []


class Plugin:
    @hookimpl
    def message_will_be_answered(self, message, context):
        return None

    @hookimpl
    def reply_did_finish(self, reply, context):
        seen.append(len(reply))


plugin = Plugin()
"""
WORDS = ["Clear", " skies", " ahead,", " captain;", " the", " route", " is", " set."]


class InstantSource(StreamingSource):
    """A model standing outside the machine, answering at once: eight tokens, every time."""

    name = "instant"
    context_size = 4096

    async def stream(self, request: ChatInput, context: RunContext) -> AsyncIterator[StreamEvent]:
        for word in WORDS:
            yield TokenEvent(word)
        stats = ReplyStats(
            sum(len(m.content) // 4 for m in request.messages), len(WORDS), 0.0, 0.0, 4096, "stop"
        )
        yield ChatOutput("".join(WORDS), stats)

    async def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(text) // 4 + 1 for text in texts]

    async def aclose(self) -> None:
        pass


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.95) - 1] * 1e3


async def measure(replies: int, warmup: int, root: Path) -> None:
    from nexus_desktop.cards.model import CharacterCard
    from nexus_desktop.chat.service import ChatService, ReplySaved
    from nexus_desktop.control.governor import Governor
    from nexus_desktop.control.metrics import MetricsRecorder
    from nexus_desktop.control.policy import Policy
    from nexus_desktop.db.store import AsyncStore, Store
    from nexus_desktop.modules.registry import ModuleHost
    from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor
    from nexus_desktop.secrets import SecretStore
    from nexus_desktop.settings import Settings
    from tests.hostile.modules import write_module

    for name, source_code, hooks in (
        ("bench-filter", FILTER_SOURCE, ["message_will_send"]),
        ("bench-watcher", WATCHER_SOURCE, ["message_will_be_answered", "reply_did_finish"]),
    ):
        write_module(root / "dev" / name, name, code=source_code, hooks=hooks)
    store = Store(root / "nexus.db")
    host = ModuleHost(
        store.engine,
        bundled_dir=root / "none",
        user_dir=root / "user",
        developer_dir=root / "dev",
        builtins=False,
    )
    host.refresh()
    for card in host.list_modules():
        host.approve(host.review(card.name))
    supervisor = ModuleSupervisor(host, SecretStore("nexus-bench"), rate_per_minute=10**9)
    await supervisor.start()
    assert len(supervisor.status()) == 2 and all(s.state == "running" for s in supervisor.status().values())

    card = CharacterCard(name="Vega", description="A starship pilot.", first_mes="Where to, captain?")
    governed_id = store.add_character("Vega", card.model_dump(mode="json")).id
    plain_id = store.add_character(
        "Aria", card.model_copy(update={"name": "Aria"}).model_dump(mode="json")
    ).id
    assert governed_id is not None and plain_id is not None
    governor = Governor(store.engine)
    governor.set_policy(
        governed_id,
        Policy(
            max_reply_tokens=64,
            daily_token_budget=10**9,
            daily_tool_calls=100,
            tool_cooldowns={"dice.roll": 30},
            tool_prerequisites={"notes.recall": ["notes.remember"]},
        ),
    )
    source = InstantSource()
    settings = Settings().model_copy(update={"max_tokens": 64})
    metrics = MetricsRecorder(store.engine)
    db = AsyncStore(store)

    async def get_source(_character: str) -> InstantSource:
        return source

    governed = ChatService(
        db,
        get_source,
        lambda: settings,
        governor=governor,
        get_interceptors=lambda: supervisor,
        record_call=metrics.record,
    )
    plain = ChatService(db, get_source, lambda: settings, governor=governor)
    request = ChatInput(
        messages=(ChatMessage("system", "You are Vega."), ChatMessage("user", "Hello")),
        sampling=settings.sampling(),
    )

    async def direct() -> None:
        async for _event in source.stream(request, RunContext()):
            pass

    async def reply(service: ChatService, character_id: int) -> float:
        chat, _ = await service.new_chat(character_id)
        assert chat.id is not None
        started = time.perf_counter()
        events = [event async for event in service.send(chat.id, "Hello")]
        elapsed = time.perf_counter() - started
        assert isinstance(events[-1], ReplySaved), events[-1]
        return elapsed

    samples: dict[str, list[float]] = {"direct": [], "chat, no governor": [], "governed": []}
    for index in range(warmup + replies):
        started = time.perf_counter()
        await direct()
        times = {
            "direct": time.perf_counter() - started,
            "chat, no governor": await reply(plain, plain_id),
            "governed": await reply(governed, governed_id),
        }
        if index >= warmup:
            for label, seconds in times.items():
                samples[label].append(seconds)
    await governed.pipeline.wait_finished()
    faults = {name: status.interceptor_faults for name, status in supervisor.status().items()}
    await supervisor.aclose()
    metrics.close()
    db.close()

    direct_times = samples["direct"]
    for label, values in samples.items():
        p50, p95 = percentiles(values)
        print(f"{label:>18}: p50 {p50:7.3f} ms   p95 {p95:7.3f} ms   (N={replies})")
    added = [g - d for g, d in zip(samples["governed"], direct_times, strict=True)]
    governor_only = [g - p for g, p in zip(samples["governed"], samples["chat, no governor"], strict=True)]
    p50, p95 = percentiles(added)
    print(f"added by the governed pipeline vs a direct call: p50 {p50:.3f} ms, p95 {p95:.3f} ms")
    p50, p95 = percentiles(governor_only)
    print(f"added by the governor and the modules alone: p50 {p50:.3f} ms, p95 {p95:.3f} ms")
    print("target: added by the governed pipeline, p95 < 5 ms")
    print(f"interceptor faults: {faults}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as folder:
        os.environ["NEXUS_DATA_DIR"] = str(Path(folder) / "data")
        asyncio.run(measure(args.replies, args.warmup, Path(folder)))


if __name__ == "__main__":
    main()
