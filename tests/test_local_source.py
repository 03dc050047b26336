"""The local llama.cpp source: real SmolLM2 model, real worker process, one thread.

No timings are asserted; where a test depends on something happening "during" work it waits
for an observable event (a token) instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import psutil
import pytest
from gguf import GGUFWriter
from gguf.constants import GGUFValueType

from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ModelCrashedError,
    ModelError,
    ModelFileError,
    ModelSource,
    RunContext,
    SamplingSettings,
    StreamEvent,
    TokenEvent,
)
from nexus_desktop.llm.hardware import GpuInfo, llama_build_info, nvidia_gpus
from nexus_desktop.llm.local import LocalLlamaSource

pytestmark = pytest.mark.model

T = TypeVar("T")
GREEDY = SamplingSettings(temperature=0.0, max_tokens=24, seed=7)


def ask(text: str, sampling: SamplingSettings = GREEDY) -> ChatInput:
    return ChatInput(
        messages=(ChatMessage("system", "You are a friendly cat."), ChatMessage("user", text)),
        sampling=sampling,
    )


def with_source(model: Path, body: Callable[[LocalLlamaSource], Awaitable[T]], **options: object) -> T:
    """Run ``body`` against a started source on a fresh event loop, always closing the worker."""

    async def main() -> T:
        source = LocalLlamaSource(model, context_size=2048, threads=1, **options)  # type: ignore[arg-type]
        try:
            await source.start()
            return await body(source)
        finally:
            await source.aclose()

    return asyncio.run(main())


async def collect(
    source: LocalLlamaSource, request: ChatInput, context: RunContext | None = None
) -> list[StreamEvent]:
    return [event async for event in source.stream(request, context or RunContext())]


# --- Replies ---------------------------------------------------------------------------------


def test_reply_streams_tokens_then_one_output_with_sane_stats(smollm2_path: Path) -> None:
    async def body(source: LocalLlamaSource) -> None:
        assert isinstance(source, ModelSource)
        events = await collect(source, ask("What do you like to eat?"))

        *tokens, final = events
        assert tokens and all(isinstance(event, TokenEvent) for event in tokens)
        assert isinstance(final, ChatOutput)
        assert final.text == "".join(event.text for event in tokens if isinstance(event, TokenEvent))
        assert final.text.strip()
        stats = final.stats
        assert stats.finish_reason in ("stop", "length")
        assert stats.prompt_tokens > 10
        assert 0 < stats.completion_tokens <= 24
        assert len(tokens) <= stats.completion_tokens  # At most one event per token.
        assert stats.first_token_seconds > 0 and stats.seconds >= 0
        assert stats.context_size == 2048 == source.context_size
        assert stats.context_used == stats.prompt_tokens + stats.completion_tokens

    with_source(smollm2_path, body)


def test_one_shot_call_returns_the_same_reply_as_the_stream(smollm2_path: Path) -> None:
    async def body(source: LocalLlamaSource) -> tuple[str, str]:
        streamed = (await collect(source, ask("Say hello.")))[-1]
        called = await source(ask("Say hello."), RunContext())
        assert isinstance(streamed, ChatOutput)
        return streamed.text, called.text

    streamed_text, called_text = with_source(smollm2_path, body)
    assert called_text == streamed_text and called_text


def test_token_counts_match_llama_cpp_own_usage(smollm2_path: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    request = ask("Name three colours.")
    reference = llama_cpp.Llama(model_path=str(smollm2_path), n_ctx=2048, n_threads=1, verbose=False)
    expected = reference.create_chat_completion(
        messages=[{"role": m.role, "content": m.content} for m in request.messages],
        temperature=0.0,
        max_tokens=24,
        repeat_penalty=GREEDY.repeat_penalty,
        seed=7,
    )
    texts = ["Hello world", "A longer sentence, with punctuation!", "", "<|im_start|>user", "Grüße 🙂 日本"]
    expected_counts = [len(reference.tokenize(t.encode(), add_bos=False, special=True)) for t in texts]
    reference.close()

    async def body(source: LocalLlamaSource) -> tuple[ChatOutput, list[int]]:
        output = await source(request, RunContext())
        return output, await source.count_tokens(texts)

    output, counts = with_source(smollm2_path, body)

    assert output.text == expected["choices"][0]["message"]["content"]
    assert output.stats.prompt_tokens == expected["usage"]["prompt_tokens"]
    assert output.stats.completion_tokens == expected["usage"]["completion_tokens"]
    assert counts == expected_counts and counts[2] == 0 and counts[3] == 2


# --- Stop -----------------------------------------------------------------------------------


def test_stop_mid_reply_returns_partial_text_and_the_model_keeps_working(smollm2_path: Path) -> None:
    async def body(source: LocalLlamaSource) -> None:
        context = RunContext()
        received: list[str] = []
        final: ChatOutput | None = None
        long_reply = ask("Write a long story about a cat.", SamplingSettings(max_tokens=400, seed=1))
        async for event in source.stream(long_reply, context):
            if isinstance(event, TokenEvent):
                received.append(event.text)
                if len(received) == 3:
                    context.cancel.cancel()
            else:
                final = event

        assert final is not None and final.stats.finish_reason == "cancelled"
        assert final.text == "".join(received) and final.text
        assert final.stats.completion_tokens < 400

        again = await source(ask("Say hello."), RunContext())
        assert again.stats.finish_reason != "cancelled" and again.text

    with_source(smollm2_path, body)


def test_stop_before_the_first_token_gives_an_empty_cancelled_reply(smollm2_path: Path) -> None:
    async def body(source: LocalLlamaSource) -> None:
        context = RunContext()
        context.cancel.cancel()
        output = await source(ask("Tell me everything."), context)
        assert output.stats.finish_reason == "cancelled"
        assert output.stats.completion_tokens == 0 and output.text == ""
        assert (await source(ask("Say hello."), RunContext())).text

    with_source(smollm2_path, body)


def test_stop_during_a_long_prompt_aborts_prompt_processing(smollm2_path: Path) -> None:
    # About 3000 prompt tokens: many seconds of prompt processing on one thread.
    long_text = "The quick brown fox jumps over the lazy dog. " * 300

    async def body(source: LocalLlamaSource) -> None:
        context = RunContext()
        asyncio.get_running_loop().call_later(0.3, context.cancel.cancel)
        output = await source(ask(long_text + "Summarise that."), context)
        assert output.stats.finish_reason == "cancelled"
        assert output.stats.completion_tokens == 0 and output.text == ""
        assert output.stats.prompt_tokens > 2500
        assert (await source(ask("Say hello."), RunContext())).text

    async def main() -> None:
        source = LocalLlamaSource(smollm2_path, context_size=4096, threads=1)
        try:
            await source.start()
            await body(source)
        finally:
            await source.aclose()

    asyncio.run(main())


def test_walking_away_from_a_stream_leaves_the_source_usable(smollm2_path: Path) -> None:
    async def body(source: LocalLlamaSource) -> None:
        stream = source.stream(ask("Write a long poem.", SamplingSettings(max_tokens=300)), RunContext())
        first = await anext(stream)
        assert isinstance(first, TokenEvent)
        await stream.aclose()  # type: ignore[attr-defined]
        assert (await source(ask("Say hello."), RunContext())).stats.finish_reason != "cancelled"

    with_source(smollm2_path, body)


# --- Crashes and bad files ---------------------------------------------------------------------


def test_worker_killed_mid_reply_raises_crashed_and_restart_brings_it_back(smollm2_path: Path) -> None:
    async def body(source: LocalLlamaSource) -> None:
        first_pid = source.pid
        assert first_pid is not None
        with pytest.raises(ModelCrashedError) as caught:
            async for event in source.stream(
                ask("Write a long story.", SamplingSettings(max_tokens=300)), RunContext()
            ):
                if isinstance(event, TokenEvent):
                    os.kill(first_pid, signal.SIGKILL)
        message = str(caught.value)
        assert "SIGKILL" in message and "reload the model" in message
        assert not source.running

        await source.restart()
        assert source.running and source.pid != first_pid
        assert (await source(ask("Say hello."), RunContext())).text

    with_source(smollm2_path, body)


def test_next_call_after_a_crash_starts_a_fresh_worker(smollm2_path: Path) -> None:
    async def body(source: LocalLlamaSource) -> None:
        pid = source.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # while idle; a crash during a reply is the test above
        for _ in range(200):
            if not source.running:
                break
            await asyncio.sleep(0.05)
        assert not source.running
        assert (await source(ask("Say hello."), RunContext())).text
        assert source.running and source.pid != pid

    with_source(smollm2_path, body)


def write_tiny_gguf(path: Path, *, arch: str, shape: tuple[int, ...] = (8, 8)) -> Path:
    writer = GGUFWriter(path, arch)
    writer.add_block_count(1)
    writer.add_tensor("blk.0.attn_q.weight", np.ones(shape, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def make_bad_file(kind: str, folder: Path, model: Path) -> Path:
    path = folder / f"{kind}.gguf"
    if kind == "zero-byte":
        path.touch()
    elif kind == "not-gguf":
        path.write_text("I am a text file.\n")
    elif kind == "garbage-after-magic":
        path.write_bytes(b"GGUF" + os.urandom(4096))
    elif kind == "truncated":
        with model.open("rb") as source, path.open("wb") as target:
            target.write(source.read(40_000_000))
    elif kind == "zero-dimension":
        write_tiny_gguf(path, arch="llama", shape=(0, 8))
    return path


def failed_start(path: Path, error: type[ModelError]) -> str:
    """Start a local source on ``path``, which must fail with ``error`` and leave no worker
    behind; the error's message."""

    async def main() -> str:
        source = LocalLlamaSource(path, threads=1)
        with pytest.raises(error) as caught:
            await source.start()
        assert source.pid is None and not source.running
        await source.aclose()
        return str(caught.value)

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("kind", "advice"),
    [
        ("missing", "not found"),
        ("zero-byte", "empty"),
        ("not-gguf", "not a GGUF model file"),
        ("garbage-after-magic", "garbage-after-magic.gguf"),
        ("truncated", "truncated (40 MB of 98 MB)"),
        ("zero-dimension", "zero-sized dimension"),
    ],
)
def test_unusable_model_file_is_refused_before_any_worker_starts(
    kind: str, advice: str, smollm2_path: Path, tmp_path: Path
) -> None:
    path = make_bad_file(kind, tmp_path, smollm2_path)
    assert advice in failed_start(path, ModelFileError)


def test_model_llama_cpp_cannot_load_gives_its_reason_and_no_crash(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "alien.gguf", arch="alien-architecture")
    message = failed_start(path, ModelFileError)
    assert "llama.cpp could not load alien.gguf" in message and "alien-architecture" in message


def copy_with_patched_number(model: Path, target: Path, key: str, value: int) -> Path:
    """Copy ``model`` and overwrite one uint32 metadata value in place."""
    shutil.copyfile(model, target)
    with target.open("r+b") as handle:
        header = handle.read(4_000_000)
        needle = struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", GGUFValueType.UINT32)
        position = header.index(needle) + len(needle)
        handle.seek(position)
        handle.write(struct.pack("<I", value))
    return target


def test_model_that_crashes_llama_cpp_while_loading_is_contained(smollm2_path: Path, tmp_path: Path) -> None:
    # A layer count of zero passes the header check but makes llama.cpp abort (GGML_ASSERT).
    crashing = copy_with_patched_number(smollm2_path, tmp_path / "no-layers.gguf", "llama.block_count", 0)
    message = failed_start(crashing, ModelCrashedError)
    assert "crashed (SIGABRT) while loading no-layers.gguf" in message and "GGML_ASSERT" in message

    async def main() -> None:
        good = LocalLlamaSource(smollm2_path, context_size=1024, threads=1)
        try:
            assert (await good(ask("Say hello."), RunContext())).text
        finally:
            await good.aclose()

    asyncio.run(main())


# --- LoRA adapters and switching models -------------------------------------------------------


def write_adapter(path: Path, n_embd: int) -> Path:
    """A zero LoRA (B = 0) on layer 0's query projection: it must not change any output."""
    writer = GGUFWriter(path, "llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 8.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.full((4, n_embd), 0.01, np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((n_embd, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_mismatched_lora_adapter_is_refused_before_loading(smollm2_path: Path, tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "for-a-bigger-model.gguf", n_embd=512)

    async def main() -> None:
        source = LocalLlamaSource(smollm2_path, threads=1, lora_path=adapter)
        with pytest.raises(ModelFileError, match="does not fit"):
            await source.start()
        assert source.pid is None
        await source.aclose()

    asyncio.run(main())


def test_matching_lora_adapter_loads_and_answers(smollm2_path: Path, tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "zero.gguf", n_embd=576)

    async def body(source: LocalLlamaSource) -> str:
        return (await source(ask("Say hello."), RunContext())).text

    base = with_source(smollm2_path, body)
    adapted = with_source(smollm2_path, body, lora_path=adapter)
    assert adapted == base and adapted


def test_switching_models_closes_one_worker_and_starts_another(smollm2_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-model.gguf"
    shutil.copyfile(smollm2_path, other)

    async def main() -> None:
        first = LocalLlamaSource(smollm2_path, context_size=1024, threads=1)
        await first.start()
        first_pid = first.pid
        assert (await first(ask("Say hello."), RunContext())).text
        await first.aclose()
        assert first_pid is not None and not psutil.pid_exists(first_pid)

        second = LocalLlamaSource(other, context_size=1024, threads=1)
        try:
            await second.start()
            assert second.name == "other-model.gguf" and second.pid != first_pid
            assert (await second(ask("Say hello."), RunContext())).text
        finally:
            await second.aclose()

    asyncio.run(main())


def test_closing_while_the_model_loads_stops_the_load(smollm2_path: Path) -> None:
    async def main() -> None:
        source = LocalLlamaSource(smollm2_path, threads=1)
        loading = asyncio.create_task(source.start())
        for _ in range(3000):
            if source.pid is not None:
                break
            await asyncio.sleep(0.01)
        pid = source.pid
        assert pid is not None
        await source.aclose()
        with pytest.raises(ModelError, match="stopped because the model was closed"):
            await loading
        assert not source.running and not psutil.pid_exists(pid)

    asyncio.run(main())


# --- Limits, hardware and event loops ---------------------------------------------------------


def test_conversation_longer_than_the_context_is_explained(smollm2_path: Path) -> None:
    async def main() -> None:
        source = LocalLlamaSource(smollm2_path, context_size=256, threads=1)
        try:
            with pytest.raises(ModelError, match="does not fit the model's context of 256 tokens"):
                await source(ask("word " * 400), RunContext())
            assert (await source(ask("Hi"), RunContext())).text  # Started on demand, still fine.
        finally:
            await source.aclose()

    asyncio.run(main())


def test_cpu_build_reports_no_gpu_offload_and_how_to_get_it(smollm2_path: Path) -> None:
    info = llama_build_info()
    assert info.version == "0.3.36"

    async def body(source: LocalLlamaSource) -> tuple[bool, int, str | None]:
        return source.supports_gpu_offload, source.gpu_layers_used, source.llama_cpp_version

    supports, layers, version = with_source(smollm2_path, body)
    assert version == info.version and supports == info.supports_gpu_offload
    if not supports:
        assert layers == 0
        assert 'CMAKE_ARGS="-DGGML_CUDA=on"' in info.hint and "llama-cpp-python==0.3.36" in info.hint


def test_source_works_under_a_qt_event_loop(smollm2_path: Path, qapp: object) -> None:
    qasync = pytest.importorskip("qasync")
    loop = qasync.QEventLoop(qapp)

    async def main() -> ChatOutput:
        source = LocalLlamaSource(smollm2_path, context_size=1024, threads=1)
        try:
            events = await collect(source, ask("Say hello."))
            final = events[-1]
            assert isinstance(final, ChatOutput)
            return final
        finally:
            await source.aclose()

    try:
        output = loop.run_until_complete(main())
    finally:
        loop.close()
        # The loop's QTimer belongs to Python: delete it now, on the Qt thread, not whenever the
        # garbage collector runs (possibly on another thread, which crashes a later Qt test).
        from PySide6.QtCore import QCoreApplication, QEvent

        loop._timer.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        asyncio.set_event_loop(None)
    assert output.text and output.stats.completion_tokens > 0


def test_nvidia_gpus_are_read_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The GPU is outside this machine, so nvidia-smi is the one thing stood in for.
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho 'NVIDIA GeForce RTX 4090, 24564, 23012'\necho 'NVIDIA H200, 143771, 143000'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    nvidia_gpus.cache_clear()
    try:
        gpus = nvidia_gpus()
    finally:
        nvidia_gpus.cache_clear()
    assert gpus == (GpuInfo("NVIDIA GeForce RTX 4090", 24564, 23012), GpuInfo("NVIDIA H200", 143771, 143000))


def test_no_nvidia_smi_means_no_nvidia_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    nvidia_gpus.cache_clear()
    try:
        assert nvidia_gpus() == ()
    finally:
        nvidia_gpus.cache_clear()


LABELS = ["chat", "roll_dice", "remember_note"]


def test_grammar_constrained_reply_is_one_of_the_allowed_labels(smollm2_path: Path) -> None:
    grammar = "root ::= " + " | ".join(f'"{label}"' for label in LABELS)
    request = ChatInput(
        messages=(ChatMessage("user", "Roll two dice for me. Answer with a label."),),
        sampling=GREEDY,
        grammar=grammar,
    )

    async def body(source: LocalLlamaSource) -> ChatOutput:
        return await source(request, RunContext())

    output = with_source(smollm2_path, body)
    assert output.text in LABELS


def test_json_schema_constrained_reply_parses_and_matches_the_schema(smollm2_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"tool": {"enum": LABELS}, "sides": {"type": "integer"}},
        "required": ["tool", "sides"],
    }
    request = ChatInput(
        messages=(ChatMessage("user", "Roll a 20-sided die. Reply in JSON."),),
        sampling=GREEDY,
        json_schema=schema,
    )

    async def body(source: LocalLlamaSource) -> ChatOutput:
        return await source(request, RunContext())

    reply = json.loads(with_source(smollm2_path, body).text)
    assert reply["tool"] in LABELS and isinstance(reply["sides"], int)
