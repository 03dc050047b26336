"""Generation tokens/s through the app's full chat path against raw ``llama_cpp.Llama``.

The app side is the real window: prompt assembly from the character card, the chat service,
the model worker process, and the stream into the chat widget; tokens are timed as they reach
the widget.  The raw side calls ``llama_cpp.Llama.create_chat_completion`` in this process on
the same messages, model, sampling (greedy, the app's stop list) and thread count.  Rounds
run in pairs, in alternating order; the median of the pairs' ratios is the figure.
Target: ratio ≥ 0.97.

    .venv/bin/python benchmarks/chat_throughput.py [--rounds 7] [--tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from _window import run_with_window, send_and_wait

THREADS = 1
CONTEXT = 2048
PROMPT = "Tell me about the strangest salvage job you ever did, in detail."


def rate(times: list[float]) -> float:
    """Text chunks/s after the first (its wait is prompt processing).

    llama-cpp-python streams one chunk per token except where it holds text back that might
    start a stop string; both sides use the same stop list, so their chunks are the same.
    """
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0


def raw_round(model_path: str, messages: list[dict[str, str]], stop: list[str], tokens: int) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, n_ctx=CONTEXT, n_threads=THREADS, n_gpu_layers=0, verbose=False)
    times: list[float] = []
    stream: Any = llm.create_chat_completion(
        messages=messages,
        stream=True,
        temperature=0.0,
        max_tokens=tokens,
        seed=1,
        repeat_penalty=1.1,
        stop=stop,  # as the app's: llama-cpp-python holds back text that might start a stop string
    )
    for chunk in stream:
        if chunk["choices"][0].get("delta", {}).get("content"):
            times.append(time.perf_counter())
    llm.close()
    return rate(times)


async def app_round(window: Any, core: Any) -> tuple[float, list[dict[str, str]], list[str]]:
    """One reply through the window; returns tokens/s seen by the widget, the prompt and stop list."""
    times: list[float] = []
    sent: list[dict[str, str]] = []
    stop: list[str] = []
    service = core.chat
    original_send = service.send
    source = await core.sources.get()
    original_stream = source.stream

    def spying_stream(request: Any, context: Any) -> Any:
        sent[:] = [{"role": m.role, "content": m.content} for m in request.messages]
        stop[:] = list(request.sampling.stop)
        return original_stream(request, context)

    async def timed_send(chat_id: int, text: str) -> Any:
        from nexus_desktop.chat.service import ReplyToken

        async for event in original_send(chat_id, text):
            if isinstance(event, ReplyToken):
                times.append(time.perf_counter())
            yield event  # the widget receives it right after this timestamp

    service.send = timed_send
    source.stream = spying_stream
    try:
        await window.chat_view.open_character(window.character(window.sidebar.current_id()), new_chat=True)
        await send_and_wait(window, PROMPT)
    finally:
        service.send = original_send
        source.stream = original_stream
    shown = window.chat_view.widgets[-1].message
    assert shown.content
    worker_rate = shown.stats["tokens_per_second"]  # every token; a chunk may hold several
    print(f"  app round: {rate(times):.1f} chunks/s at the widget; worker: {worker_rate:.1f} tok/s")
    return rate(times), sent, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()

    from nexus_desktop.chat.sources import local_model_path

    async def body(window: Any, core: Any) -> None:
        model = str(local_model_path(core.settings))
        app_rates: list[float] = []
        raw_rates: list[float] = []
        messages: list[dict[str, str]] = []
        stop: list[str] = []
        for round_index in range(args.rounds):
            # Pairs run back to back, in alternating order, so both sides of a pair see the same
            # machine; the shared machine's load swings single rounds by 10-15%.
            if round_index % 2 == 0:
                app_rate, messages, stop = await app_round(window, core)
                raw_rate = await asyncio.to_thread(raw_round, model, messages, stop, args.tokens)
            else:
                raw_rate = await asyncio.to_thread(raw_round, model, messages, stop, args.tokens)
                app_rate, messages, stop = await app_round(window, core)
            app_rates.append(app_rate)
            raw_rates.append(raw_rate)
        ratios = [app / raw for app, raw in zip(app_rates, raw_rates, strict=True)]
        print(f"model: {model} · threads {THREADS} · greedy · {args.tokens} tokens max")
        print(f"raw llama_cpp.Llama: median {statistics.median(raw_rates):.1f} tok/s ({_list(raw_rates)})")
        print(f"NEXUS chat path:     median {statistics.median(app_rates):.1f} tok/s ({_list(app_rates)})")
        print(f"per-pair ratios:     {', '.join(f'{r:.3f}' for r in ratios)}")
        ratio = statistics.median(ratios)
        print(f"chat throughput ratio (NEXUS / raw, median of pairs, target >= 0.97): {ratio:.3f}")

    run_with_window(
        body, threads=THREADS, context_size=CONTEXT, temperature=0.0, max_tokens=args.tokens, gpu_layers=0
    )


def _list(rates: list[float]) -> str:
    return ", ".join(f"{r:.1f}" for r in rates)


if __name__ == "__main__":
    main()
