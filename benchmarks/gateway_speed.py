"""Generation tokens/s through the OpenAI-compatible gateway against raw ``llama_cpp.Llama``.

The gateway side is the app's real path: an ``AppCore`` serving the gateway on 127.0.0.1 (on its
own event loop thread, as the window's loop would), its model worker process, and an ``openai``
client streaming the reply over HTTP; chunks are timed as the client receives them.  The raw side
is ``llama_cpp.Llama.create_chat_completion`` in this process on the same model, messages, greedy
sampling, token cap and thread count.  Rounds alternate which side goes first; the figure is the
median of the rounds' ratios.  Target: ratio ≥ 0.95.

    .venv/bin/python benchmarks/gateway_speed.py [--rounds 5] [--tokens 128]

``measure(...)`` is what ``benchmarks/bus.py`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
THREADS = 1
CONTEXT = 2048
PROMPT = "Tell me about the strangest salvage job you ever did, in detail."
KEY = "nexus-benchmark-key"


@dataclass(frozen=True)
class GatewaySpeed:
    gateway_tokens_per_second: float
    raw_tokens_per_second: float
    ratio: float
    """Median over the rounds of gateway / raw (target ≥ 0.95)."""
    rounds: int
    tokens: int

    def __str__(self) -> str:
        return (
            f"gateway {self.gateway_tokens_per_second:.1f} tok/s vs raw llama.cpp "
            f"{self.raw_tokens_per_second:.1f} tok/s: ratio {self.ratio:.3f} "
            f"(median of {self.rounds} alternating rounds, {self.tokens} tokens, target >= 0.95)"
        )


def rate(times: list[float]) -> float:
    """Chunks/s after the first (its wait is prompt processing); one chunk per token here."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0


def raw_round(llm: Any, messages: list[dict[str, str]], tokens: int) -> float:
    times: list[float] = []
    stream: Any = llm.create_chat_completion(
        messages=messages, stream=True, temperature=0.0, max_tokens=tokens, seed=1, repeat_penalty=1.1
    )
    for chunk in stream:
        if chunk["choices"][0].get("delta", {}).get("content"):
            times.append(time.perf_counter())
    return rate(times)


def gateway_round(client: Any, model: str, messages: list[dict[str, str]], tokens: int) -> float:
    times: list[float] = []
    stream = client.chat.completions.create(
        model=model, messages=messages, stream=True, temperature=0, max_tokens=tokens, seed=1
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    return rate(times)


class _AppLoop:
    """An event loop in a thread, for the app core (the window's loop plays this part)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="app-loop", daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(600)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def measure(rounds: int = 5, tokens: int = 128, model_path: str | Path | None = None) -> GatewaySpeed:
    """Tokens/s through the gateway and from raw llama.cpp, on the same model and reply."""
    import openai
    from llama_cpp import Llama

    from nexus_desktop.core import AppCore
    from nexus_desktop.gateway.key import KEY_NAME
    from nexus_desktop.gateway.service import active_model_id
    from nexus_desktop.llm.catalog import default_model_path

    path = Path(model_path) if model_path else default_model_path()
    if path is None:
        raise SystemExit("The bundled SmolLM2 model is not installed; run installers/setup.sh.")
    messages = [{"role": "user", "content": PROMPT}]
    previous_data_dir = os.environ.get("NEXUS_DATA_DIR")
    with tempfile.TemporaryDirectory(prefix="nexus-gateway-bench-") as data:
        os.environ["NEXUS_DATA_DIR"] = data  # never the user's data
        app = _AppLoop()
        core = AppCore(Path(data) / "nexus.db")
        llm = Llama(model_path=str(path), n_ctx=CONTEXT, n_threads=THREADS, n_gpu_layers=0, verbose=False)
        try:
            core.secrets.set(KEY_NAME, KEY, session_only=True)  # no keyring needed to benchmark
            update = {
                "model_path": str(path),
                "threads": THREADS,
                "context_size": CONTEXT,
                "gpu_layers": 0,
                "gateway_port": _free_port(),
            }
            core.settings = core.settings.model_copy(update=update)
            problem = app.call(core.serve_gateway(force=True))
            if problem or core.gateway is None:
                raise SystemExit(problem)
            client = openai.OpenAI(base_url=core.gateway.url, api_key=KEY, max_retries=0, timeout=600)
            model = active_model_id(core.settings)
            gateway_round(client, model, messages, 4)  # loads the model; not timed
            raw_round(llm, messages, 4)
            gateway_rates: list[float] = []
            raw_rates: list[float] = []
            for index in range(rounds):
                if index % 2 == 0:
                    gateway_rates.append(gateway_round(client, model, messages, tokens))
                    raw_rates.append(raw_round(llm, messages, tokens))
                else:
                    raw_rates.append(raw_round(llm, messages, tokens))
                    gateway_rates.append(gateway_round(client, model, messages, tokens))
        finally:
            llm.close()
            app.call(core.aclose())
            app.close()
            if previous_data_dir is None:
                os.environ.pop("NEXUS_DATA_DIR", None)
            else:
                os.environ["NEXUS_DATA_DIR"] = previous_data_dir
    ratios = [g / r for g, r in zip(gateway_rates, raw_rates, strict=True) if r > 0]
    return GatewaySpeed(
        statistics.median(gateway_rates),
        statistics.median(raw_rates),
        statistics.median(ratios) if ratios else 0.0,
        rounds,
        tokens,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--model", help="a GGUF file (default: the bundled SmolLM2)")
    args = parser.parse_args()
    print(measure(args.rounds, args.tokens, args.model))


if __name__ == "__main__":
    main()
