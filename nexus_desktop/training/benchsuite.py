"""Benchmark suites: held-out examples run through llama.cpp, the way the app will use the model.

A classifier answers under a GBNF grammar over its labels (the base model never answers with a
bare label otherwise) with 16 tokens of room (6 truncated labels like "system_s").  Scores:
accuracy, latency (p50/p95 ms per item) and consistency (share of items whose label does not
change across sampled re-runs).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nexus_desktop.control.metrics import CallSite, RecordCall, adapter_label, timed_call
from nexus_desktop.llm.contract import ChatInput, ChatMessage, ModelSource, RunContext, SamplingSettings
from nexus_desktop.llm.local import LocalLlamaSource
from nexus_desktop.training.datasets import DatasetError, read_jsonl

LABEL_MAX_TOKENS = 16


@dataclass(frozen=True)
class SuiteItem:
    messages: tuple[ChatMessage, ...]
    """The prompt: system and user turns, without the expected answer."""
    expected: str


def label_grammar(labels: Sequence[str]) -> str:
    """A GBNF grammar whose only sentences are the labels."""
    quoted = " | ".join('"' + label.replace("\\", "\\\\").replace('"', '\\"') + '"' for label in labels)
    return f"root ::= {quoted}\n"


def load_suite(path: Path, system_prompt: str) -> list[SuiteItem]:
    """``{"text", "label"}`` lines, or ``{"messages": [...]}`` lines whose last assistant turn is the
    expected answer."""
    if not path.exists():
        raise DatasetError(f"The benchmark suite {path} does not exist; reinstall NEXUS or fix the zoo spec.")
    items: list[SuiteItem] = []
    for record in read_jsonl(path):
        if "messages" in record:
            turns = [ChatMessage(m["role"], m["content"]) for m in record["messages"]]
            if not turns or turns[-1].role != "assistant":
                raise DatasetError(f"A line of {path.name} does not end with the expected answer; fix it.")
            items.append(SuiteItem(tuple(turns[:-1]), turns[-1].content.strip()))
        else:
            prompt = [ChatMessage("system", system_prompt)] if system_prompt else []
            prompt.append(ChatMessage("user", str(record["text"])))
            items.append(SuiteItem(tuple(prompt), str(record["label"]).strip()))
    if not items:
        raise DatasetError(f"The benchmark suite {path.name} is empty; add held-out examples.")
    return items


async def classify(
    source: ModelSource,
    messages: Sequence[ChatMessage],
    labels: Sequence[str],
    *,
    temperature: float = 0.0,
    seed: int = 0,
    site: CallSite | None = None,
) -> str:
    """The model's label for ``messages``; recorded as a model call at ``site`` when given."""
    request = ChatInput(
        messages=tuple(messages),
        sampling=SamplingSettings(
            temperature=temperature, max_tokens=LABEL_MAX_TOKENS, seed=seed, repeat_penalty=1.0
        ),
        grammar=label_grammar(labels) if labels else None,
    )
    output = await timed_call(source, request, RunContext(), site)
    return output.text.strip()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def spread_across_labels(items: Sequence[SuiteItem], count: int) -> list[int]:
    """Indexes of ``count`` items taken in turn from each expected label (in file order), so the
    consistency check covers every label, not only the first rows of the file (which may all be
    one label)."""
    by_label: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_label.setdefault(item.expected, []).append(index)
    queues = list(by_label.values())
    chosen: list[int] = []
    depth = 0
    while len(chosen) < min(count, len(items)):
        for queue in queues:
            if depth < len(queue) and len(chosen) < count:
                chosen.append(queue[depth])
        depth += 1
    return sorted(chosen)


async def score_source(
    source: ModelSource,
    items: Sequence[SuiteItem],
    labels: Sequence[str],
    *,
    repeats: int = 2,
    consistency_items: int = 20,
    site: CallSite | None = None,
) -> dict[str, float]:
    correct = 0
    latencies: list[float] = []
    first: list[str] = []
    for item in items:
        started = time.perf_counter()
        answer = await classify(source, item.messages, labels, site=site)
        latencies.append((time.perf_counter() - started) * 1000)
        first.append(answer)
        correct += answer == item.expected
    stable = 0
    checked = spread_across_labels(items, consistency_items) if repeats > 0 else []
    for index in checked:
        item = items[index]
        answers = {first[index]}
        for run in range(repeats):
            answers.add(
                await classify(source, item.messages, labels, temperature=0.7, seed=1 + run, site=site)
            )
        stable += len(answers) == 1
    return {
        "accuracy": correct / len(items),
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p95": _percentile(latencies, 0.95),
        "consistency": stable / len(checked) if checked else 1.0,
        "items": float(len(items)),
    }


async def run_suite(
    base_model: Path,
    suite: Path,
    labels: Sequence[str],
    system_prompt: str,
    *,
    adapter: Path | None = None,
    repeats: int = 2,
    consistency_items: int = 20,
    threads: int = 1,
    record_call: RecordCall | None = None,
) -> dict[str, float]:
    """Score the base model (or base + adapter) on a held-out suite in a fresh llama.cpp process.

    With ``record_call``, every classification is recorded as a ``gate_benchmark`` model call."""
    items = load_suite(suite, system_prompt)
    source = LocalLlamaSource(
        base_model, context_size=1024, threads=threads, gpu_layers="auto", lora_path=adapter
    )
    site = None
    if record_call is not None:
        site = CallSite(record_call, "training", "gate_benchmark", base_model.name, adapter_label(adapter))
    try:
        return await score_source(
            source, items, labels, repeats=repeats, consistency_items=consistency_items, site=site
        )
    finally:
        await source.aclose()
