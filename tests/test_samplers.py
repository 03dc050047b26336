"""Samplers reach the model: the real SmolLM2 in the worker process for the local source, and the
request body for an OpenAI-compatible server (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.llm.contract import ChatInput, ChatMessage, ChatOutput, RunContext, SamplingSettings
from nexus_desktop.llm.local import LocalLlamaSource
from nexus_desktop.llm.openai_compat import OpenAICompatSource
from nexus_desktop.llm.openai_request import sampler_fields
from nexus_desktop.llm.templates import InstructTemplate
from nexus_desktop.settings import Settings
from tests.chat_server import running_chat_server

STORY = (ChatMessage("user", "Tell me a short story about a lighthouse keeper."),)
LOOP = (
    ChatMessage("user", "Repeat after me: the cat and the dog, the cat and the dog, the cat and the dog"),
)
GREEDY = SamplingSettings(temperature=0.0, max_tokens=24, seed=1)


def replies(
    model: Path, *samplings: SamplingSettings, messages: tuple[ChatMessage, ...] = STORY
) -> list[str]:
    """One reply per sampling, in order, from one model worker."""

    async def main() -> list[str]:
        source = LocalLlamaSource(model, context_size=1024, threads=1)
        try:
            await source.start()
            texts = []
            for sampling in samplings:
                output = await source(ChatInput(messages=messages, sampling=sampling), RunContext())
                texts.append(output.text)
            return texts
        finally:
            await source.aclose()

    return asyncio.run(main())


# --- The local model ---------------------------------------------------------------------------


@pytest.mark.model
def test_the_same_seed_gives_the_same_reply_and_another_seed_another(smollm2_path: Path) -> None:
    warm = SamplingSettings(temperature=1.0, max_tokens=24)
    first, again, other = replies(
        smollm2_path, replace(warm, seed=11), replace(warm, seed=11), replace(warm, seed=12)
    )

    assert first == again and first.strip()
    assert other != first


@pytest.mark.model
def test_a_random_seed_gives_a_fresh_model_a_different_reply(smollm2_path: Path) -> None:
    # llama-cpp-python alone derives a missing seed from its default one: each fresh worker
    # would tell the same "random" story.
    random_seed = SamplingSettings(temperature=1.0, max_tokens=24, seed=None)

    (first,) = replies(smollm2_path, random_seed)
    (second,) = replies(smollm2_path, random_seed)

    assert first != second


@pytest.mark.model
def test_top_k_of_one_gives_the_greedy_reply_even_when_hot(smollm2_path: Path) -> None:
    hot = SamplingSettings(temperature=1.5, max_tokens=24, seed=5)
    greedy, top_one, hot_reply = replies(smollm2_path, GREEDY, replace(hot, top_k=1), hot)

    assert top_one == greedy
    assert hot_reply != greedy  # the control: without top-k the heat shows


@pytest.mark.model
def test_dry_breaks_a_loop_the_model_would_repeat(smollm2_path: Path) -> None:
    plain = SamplingSettings(temperature=0.0, repeat_penalty=1.0, max_tokens=50)
    looping, with_dry = replies(smollm2_path, plain, replace(plain, dry_multiplier=2.0), messages=LOOP)

    assert looping.lower().count("the cat and the dog") >= 6
    assert with_dry.lower().count("the cat and the dog") <= 3


@pytest.mark.model
def test_mirostat_and_the_penalties_change_what_is_sampled(smollm2_path: Path) -> None:
    plain = SamplingSettings(temperature=1.0, max_tokens=24, seed=3)
    base, mirostat, penalised = replies(
        smollm2_path,
        plain,
        replace(plain, mirostat_mode=2, mirostat_tau=1.0),
        replace(plain, presence_penalty=1.5, frequency_penalty=1.5, min_p=0.2, typical_p=0.5),
    )

    assert mirostat != base
    assert penalised != base


# --- Settings ------------------------------------------------------------------------------------


def test_settings_hand_every_sampler_to_the_request() -> None:
    settings = Settings(
        temperature=0.6, top_k=12, min_p=0.1, typical_p=0.9, presence_penalty=0.4, frequency_penalty=0.2,
        mirostat_mode=2, mirostat_tau=4.0, mirostat_eta=0.2, dry_multiplier=0.8, dry_base=1.5,
        dry_allowed_length=3, seed=42, max_tokens=300, chat_template="alpaca",
    )  # fmt: skip

    sampling = settings.sampling()

    assert (sampling.temperature, sampling.top_k, sampling.min_p, sampling.typical_p) == (0.6, 12, 0.1, 0.9)
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (0.4, 0.2)
    assert (sampling.mirostat_mode, sampling.mirostat_tau, sampling.mirostat_eta) == (2, 4.0, 0.2)
    assert (sampling.dry_multiplier, sampling.dry_base, sampling.dry_allowed_length) == (0.8, 1.5, 3)
    assert (sampling.seed, sampling.max_tokens) == (42, 300)
    assert sampling.template is not None and sampling.template.user_prefix == "### Instruction:\n"
    assert Settings(seed=-1).sampling().seed is None  # -1 is "random"
    assert Settings().sampling().template is None  # the model's own template


def test_settings_that_disagree_are_named_but_still_load_from_an_older_version(tmp_path: Path) -> None:
    too_long = Settings(context_size=2048, max_tokens=2048)
    unmarked = Settings(chat_template="custom", custom_template=InstructTemplate(system_prefix="S: "))

    assert "response length (2048 tokens) must be shorter than the context (2048 tokens)" in str(
        too_long.conflict()
    )
    assert "custom template needs a user or an assistant prefix" in str(unmarked.conflict())
    assert Settings(context_size=2048, max_tokens=2047).conflict() is None  # the control
    store = Store(tmp_path / "nexus.db")
    try:
        store.save_settings(too_long)  # as an older version, which had no such rule, could have
        assert store.load_settings().max_tokens == 2048  # the app still starts; Settings says what to fix
    finally:
        store.close()


# --- Remote servers ------------------------------------------------------------------------------


def ask_remote(base_url: str, model: str, sampling: SamplingSettings) -> ChatOutput:
    async def main() -> ChatOutput:
        source = OpenAICompatSource(base_url, model, api_key=None)
        try:
            first = await source(ChatInput(messages=STORY, sampling=sampling), RunContext())
            await source(ChatInput(messages=STORY, sampling=sampling), RunContext())
            return first
        finally:
            await source.aclose()

    return asyncio.run(main())


def test_a_server_receives_every_sampler_under_the_names_local_servers_read() -> None:
    sampling = SamplingSettings(
        temperature=0.7, top_p=0.9, top_k=20, min_p=0.1, typical_p=0.8, repeat_penalty=1.2,
        presence_penalty=0.5, frequency_penalty=0.3, mirostat_mode=1, mirostat_tau=4.0, mirostat_eta=0.2,
        dry_multiplier=0.8, dry_base=1.75, dry_allowed_length=2, seed=9, max_tokens=5,
    )  # fmt: skip
    with running_chat_server() as server:
        reply = ask_remote(server.base_url, "scripted", sampling)
        body = server.chat_requests()[0]

    assert reply.text
    assert {key: body[key] for key in ("temperature", "top_p", "seed", "presence_penalty")} == {
        "temperature": 0.7, "top_p": 0.9, "seed": 9, "presence_penalty": 0.5,
    }  # fmt: skip
    assert body["frequency_penalty"] == 0.3
    assert (body["top_k"], body["min_p"], body["typical_p"]) == (20, 0.1, 0.8)
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.2
    assert body["mirostat"] == body["mirostat_mode"] == 1
    assert (body["mirostat_tau"], body["mirostat_eta"]) == (4.0, 0.2)
    assert (body["dry_multiplier"], body["dry_base"], body["dry_allowed_length"]) == (0.8, 1.75, 2)


def test_samplers_that_are_off_are_not_sent() -> None:
    off = SamplingSettings(top_k=0, min_p=0.0, typical_p=1.0, repeat_penalty=1.0, max_tokens=5)
    with running_chat_server() as server:
        ask_remote(server.base_url, "scripted", off)
        body = server.chat_requests()[0]

    assert sampler_fields(off) == {}
    sent = set(body) & {"top_k", "min_p", "typical_p", "repeat_penalty", "mirostat", "dry_multiplier"}
    assert sent == set()
    assert "presence_penalty" not in body and "frequency_penalty" not in body
    assert sampler_fields(SamplingSettings())["top_k"] == 40  # the control: the defaults are on


class _StrictOpenAIHandler(BaseHTTPRequestHandler):
    """Answers like OpenAI's API: a field it does not know is a 400 naming it."""

    server: _StrictServer
    KNOWN = frozenset(
        {"model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens", "seed"}
    )

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        unknown = sorted(set(body) - self.KNOWN)
        if unknown:
            self._send(400, "application/json", json.dumps({"error": {
                "message": f"Unrecognized request argument supplied: {unknown[0]}",
                "type": "invalid_request_error",
            }}).encode())  # fmt: skip
            return
        chunk = {"choices": [{"index": 0, "delta": {"content": "Ahoy"}, "finish_reason": "stop"}]}
        self._send(200, "text/event-stream", f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _StrictServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StrictOpenAIHandler)
        self.bodies: list[dict[str, Any]] = []


@pytest.fixture
def strict_server() -> Iterator[_StrictServer]:
    server = _StrictServer()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_server_that_refuses_unknown_fields_still_answers_and_is_not_asked_again(
    strict_server: _StrictServer,
) -> None:
    url = f"http://127.0.0.1:{strict_server.server_address[1]}/v1"

    reply = ask_remote(url, "gpt-test", SamplingSettings(top_k=20, max_tokens=5))

    assert reply.text == "Ahoy"
    first, retried, second_reply = strict_server.bodies
    assert first["top_k"] == 20
    assert "top_k" not in retried and "top_k" not in second_reply  # remembered for later requests
    assert retried["messages"] == first["messages"]
