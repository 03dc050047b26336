"""The OpenAI-compatible gateway, through the real ``openai`` client, serving the real bundled
SmolLM2 through llama.cpp, with its key in a real Secret Service.

One app core (in a thread running its own event loop, as the window's loop would) serves every
test of the module, so the model loads once.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
from sqlmodel import Session, select

from nexus_desktop.cards.model import CharacterCard
from nexus_desktop.control.policy import Policy
from nexus_desktop.control.tables import BudgetUsage, ModelCall
from nexus_desktop.core import AppCore
from nexus_desktop.gateway.http import MAX_BODY_BYTES
from nexus_desktop.gateway.key import KEY_NAME
from nexus_desktop.gateway.service import active_model_id
from tests.servers import free_port

pytestmark = [pytest.mark.keyring, pytest.mark.model]

T = TypeVar("T")
CHARACTER = "Zorblax"
CHARACTER_CARD = CharacterCard(
    name=CHARACTER,
    description="{{char}} is a purple robot from the planet Quor who loves pineapples.",
    system_prompt="You are {{char}}. Always say your name, {{char}}, in every reply.",
)


@dataclass
class Served:
    core: AppCore
    loop: asyncio.AbstractEventLoop
    port: int
    key: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(300)

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=key or self.key, max_retries=0, timeout=300)

    def model_calls(self) -> list[ModelCall]:
        self.core.metrics.flush()
        with Session(self.core.store.engine) as s:
            return list(s.exec(select(ModelCall).where(ModelCall.service == "gateway")))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("gateway-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEXUS_DATA_DIR", str(data))
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="test-app-loop", daemon=True)
        thread.start()
        core = AppCore(data / "nexus.db")
        core.store.add_character(CHARACTER, CHARACTER_CARD.model_dump(mode="json"))
        port = free_port()
        served = Served(core, loop, port, "")
        try:
            update = {"gateway_enabled": True, "gateway_port": port, "threads": 1, "max_tokens": 16}
            served.call(core.update_settings(core.settings.model_copy(update=update)))
            assert served.call(core.serve_gateway()) == ""
            assert core.gateway is not None
            served.key = core.gateway.key
            yield served
        finally:
            served.call(core.aclose())
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            loop.close()


def model_id(served: Served) -> str:
    return active_model_id(served.core.settings)


def post(served: Served, body: bytes, *, key: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key or served.key}"}
    return httpx.post(f"{served.url}/chat/completions", content=body, headers=headers, timeout=60)


# Serving ---------------------------------------------------------------------------------------------


def test_models_lists_the_active_model_and_each_character(served: Served) -> None:
    ids = [model.id for model in served.client().models.list()]
    characters = [c.name for c in served.core.store.list_characters()]
    assert ids[0] == "SmolLM2-135M-Instruct.Q4_1.gguf" == model_id(served)
    assert CHARACTER in ids and set(characters) <= set(ids)


def test_a_chat_completion_answers_with_text_and_usage(served: Served) -> None:
    reply = served.client().chat.completions.create(
        model=model_id(served),
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
    )
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 8
    call = served.model_calls()[-1]  # recorded as the chat's calls are, under the gateway's name
    assert call.ok and call.tokens_out == reply.usage.completion_tokens and call.character == ""


def test_a_streamed_completion_arrives_chunk_by_chunk_before_the_reply_ends(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model=model_id(served),
        messages=[{"role": "user", "content": "Count from one to twenty in words."}],
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    arrivals: list[tuple[float, str]] = []
    finish = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.perf_counter(), chunk.choices[0].delta.content))
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert len(arrivals) >= 4 and finish in ("stop", "length")
    # The pieces came as the model wrote them, not all at once at the end.
    assert arrivals[-1][0] - arrivals[0][0] > 0.02


def test_the_sampling_fields_reach_the_model(served: Served) -> None:
    """Greedy decoding with a seed repeats itself; max_tokens and stop cut the reply."""
    client = served.client()
    asked: dict[str, Any] = {
        "model": model_id(served),
        "messages": [{"role": "user", "content": "Write a sentence about the sea."}],
        "temperature": 0,
        "top_p": 1,
        "seed": 7,
        "presence_penalty": 0,
        "frequency_penalty": 0,
    }
    first = client.chat.completions.create(max_tokens=12, **asked)
    again = client.chat.completions.create(max_tokens=12, **asked)
    assert first.choices[0].message.content == again.choices[0].message.content
    short = client.chat.completions.create(max_tokens=3, **asked)
    assert short.usage is not None and short.usage.completion_tokens <= 3
    text = first.choices[0].message.content or ""
    word = next(w for w in text.split()[1:] if w.isalpha())
    stopped = client.chat.completions.create(max_tokens=12, stop=[word], **asked)
    assert word not in (stopped.choices[0].message.content or "")


def test_a_character_model_answers_as_the_character(served: Served) -> None:
    client = served.client()
    question = [{"role": "user", "content": "Who are you? Tell me your name."}]
    raw = client.chat.completions.create(
        model=model_id(served), messages=question, max_tokens=24, temperature=0
    )
    as_character = client.chat.completions.create(
        model=CHARACTER, messages=question, max_tokens=24, temperature=0
    )
    # The card's prompt reached the model: its system prompt and description fill the context...
    assert raw.usage is not None and as_character.usage is not None
    assert as_character.usage.prompt_tokens > raw.usage.prompt_tokens + 10
    # ...and the character answers as itself (the model reads the name the card gave it).
    assert CHARACTER in (as_character.choices[0].message.content or "")
    assert as_character.model == CHARACTER
    assert served.model_calls()[-1].character == CHARACTER


# Refusals ------------------------------------------------------------------------------------------


def test_without_the_key_or_with_a_wrong_one_nothing_is_answered_and_the_model_is_not_called(
    served: Served,
) -> None:
    body = {"model": model_id(served), "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    used_before, calls_before = served.core.sources.last_used, len(served.model_calls())
    with pytest.raises(openai.AuthenticationError, match="Bearer"):
        served.client("nexus-wrong-key").chat.completions.create(**body)
    no_key = httpx.post(f"{served.url}/chat/completions", json=body, timeout=30)
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{served.url}/models", timeout=30).status_code == 401
    assert served.core.sources.last_used == used_before and len(served.model_calls()) == calls_before
    # Positive control: the right key is answered, and the model is called.
    assert served.client().chat.completions.create(**body).choices[0].message.content is not None
    assert len(served.model_calls()) == calls_before + 1


def test_the_key_lives_in_the_keyring_and_nowhere_in_the_settings_or_database(served: Served) -> None:
    assert served.core.secrets.get(KEY_NAME) == served.key
    assert served.key not in served.core.store.load_settings().model_dump_json()
    database = Path(served.core.store.path)
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists():
            assert served.key.encode() not in path.read_bytes()


def test_a_huge_body_is_refused_with_413_before_it_is_read(served: Served) -> None:
    size = 200 * 1024 * 1024
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {served.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as connection:
        connection.sendall(head.encode() + b"[" * 65536)  # a sliver of the 200 MiB promised
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = connection.recv(65536)
            if not piece:
                break
            answer += piece
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Payload Too Large"
    error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert str(MAX_BODY_BYTES) in error["message"]
    # Positive control: a body under the limit is read and answered.
    ok = {"model": model_id(served), "messages": [{"role": "user", "content": "x" * 1000}], "max_tokens": 2}
    assert post(served, json.dumps(ok).encode()).status_code == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"model": "x", "messages": [', "not valid JSON"),
        (b'{"model": "SmolLM2-135M-Instruct.Q4_1.gguf"}', "'messages'"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "'model'"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}', "role"),
        (
            b'{"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "messages": [{"role": "user", "content": "hi"}], '
            b'"temperature": "hot"}',
            "'temperature'",
        ),
    ],
)
def test_a_malformed_body_gets_400_with_a_sentence_naming_the_problem(
    served: Served, body: bytes, named: str
) -> None:
    answer = post(served, body)
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert named in message and message.endswith(".")


def test_an_unknown_model_gets_404_naming_the_models_served(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        served.client().chat.completions.create(
            model="gpt-17", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert "gpt-17" in str(raised.value) and CHARACTER in str(raised.value)


def test_a_character_over_its_budget_gets_429_with_the_governors_sentence(served: Served) -> None:
    core = served.core
    character = core.store.find_character(CHARACTER)
    assert character is not None and character.id is not None
    question = [{"role": "user", "content": "Hello there."}]
    try:
        core.governor.set_policy(character.id, Policy(daily_token_budget=5))
        with pytest.raises(openai.RateLimitError) as raised:
            served.client().chat.completions.create(model=CHARACTER, messages=question, max_tokens=4)
        assert f"{CHARACTER}'s daily token budget is spent" in str(raised.value)
        # Under budget: answered, and the reply's tokens are counted against it.
        core.governor.set_policy(character.id, Policy(daily_token_budget=100_000))
        before = used_today(core)
        reply = served.client().chat.completions.create(model=CHARACTER, messages=question, max_tokens=4)
        assert reply.usage is not None
        assert used_today(core) - before == reply.usage.prompt_tokens + reply.usage.completion_tokens
        assert core.governor.held_tokens(CHARACTER) == 0  # nothing left reserved
    finally:
        core.governor.set_policy(character.id, None)


def used_today(core: AppCore) -> int:
    with Session(core.store.engine) as s:
        rows = s.exec(select(BudgetUsage).where(BudgetUsage.character == CHARACTER))
        return sum(row.tokens for row in rows)


def test_a_client_gone_mid_stream_frees_the_model_for_the_next_request(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model=CHARACTER,
        messages=[{"role": "user", "content": "Tell me a long story."}],
        max_tokens=200,
        stream=True,
    )
    next(iter(stream))
    stream.close()
    reply = served.client().chat.completions.create(
        model=model_id(served), messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert reply.choices[0].message.content is not None
    deadline = time.monotonic() + 30
    while served.core.governor.held_tokens(CHARACTER) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.core.governor.held_tokens(CHARACTER) == 0


# Where it listens ------------------------------------------------------------------------------------


def non_loopback_address() -> str | None:
    import psutil

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


def test_the_gateway_listens_on_loopback_only(served: Served) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("This machine has no non-loopback IPv4 address to try")
    socket.create_connection(("127.0.0.1", served.port), timeout=2).close()  # positive control
    with pytest.raises(OSError), socket.create_connection((address, served.port), timeout=2):
        pass


def test_the_gateway_is_off_by_default_and_follows_the_setting(tmp_path: Path) -> None:
    core = AppCore(tmp_path / "nexus.db")
    assert core.settings.gateway_enabled is False
    port = free_port()

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    async def scenario() -> None:
        try:
            await core.update_settings(core.settings.model_copy(update={"gateway_port": port}))
            assert await core.serve_gateway() == ""
            assert not listening()
            await core.update_settings(core.settings.model_copy(update={"gateway_enabled": True}))
            assert listening()
            await core.update_settings(core.settings.model_copy(update={"gateway_enabled": False}))
            assert not listening()
        finally:
            await core.aclose()

    asyncio.run(scenario())


def test_a_port_in_use_is_a_notice_and_another_port_then_serves(tmp_path: Path) -> None:
    notices: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        core = AppCore(tmp_path / "nexus.db")
        core.settings = core.settings.model_copy(update={"gateway_enabled": True, "gateway_port": port})

        async def scenario() -> None:
            try:
                problem = await core.serve_gateway(notices.append)
                assert f"port {port}" in problem and notices == [problem]
                other = free_port()
                await core.update_settings(core.settings.model_copy(update={"gateway_port": other}))
                assert core.gateway is not None and core.gateway.url == f"http://127.0.0.1:{other}/v1"
                key = core.gateway.key
                answer = await asyncio.to_thread(
                    httpx.get, f"{core.gateway.url}/models", headers={"Authorization": f"Bearer {key}"}
                )
                assert answer.status_code == 200
            finally:
                await core.aclose()

        asyncio.run(scenario())


def test_a_new_key_replaces_the_old_one_at_once(tmp_path: Path) -> None:
    core = AppCore(tmp_path / "nexus.db")
    core.settings = core.settings.model_copy(update={"gateway_enabled": True, "gateway_port": free_port()})

    async def scenario() -> None:
        try:
            await core.serve_gateway()
            assert core.gateway is not None
            old = core.gateway.key
            new = await core.renew_gateway_key()
            assert new != old and await asyncio.to_thread(core.secrets.get, KEY_NAME) == new

            def status(key: str) -> int:
                headers = {"Authorization": f"Bearer {key}"}
                return httpx.get(f"{core.gateway.url}/models", headers=headers).status_code  # type: ignore[union-attr]

            assert await asyncio.to_thread(status, old) == 401
            assert await asyncio.to_thread(status, new) == 200
        finally:
            await core.aclose()

    asyncio.run(scenario())


def test_keep_alive_waits_for_a_reply_streaming_to_another_app(served: Served) -> None:
    core = served.core
    saved = core.settings
    core.settings = saved.model_copy(update={"keep_alive_minutes": 0})  # unload after each reply
    try:
        stream = served.client().chat.completions.create(
            model=model_id(served),
            messages=[{"role": "user", "content": "Describe a forest."}],
            max_tokens=48,
            temperature=0,
            stream=True,
        )
        chunks = iter(stream)
        next(chunks)
        assert served.call(core.keep_alive.check_now()) is False  # busy: the model stays
        rest = list(chunks)
        assert any(c.choices and c.choices[0].finish_reason for c in rest)  # the reply finished
        # Positive control: once it ended, keep-alive 0 unloads the model.
        assert served.call(core.keep_alive.check_now()) is True
    finally:
        core.settings = saved


def test_a_client_that_waits_for_100_continue_is_told_to_send_its_body(served: Served) -> None:
    """curl sends ``Expect: 100-continue`` for bodies over 1 KiB and waits before sending them."""
    body = json.dumps(
        {"model": model_id(served), "messages": [{"role": "user", "content": "y" * 2000}], "max_tokens": 2}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {served.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as connection:
        connection.sendall(head.encode())
        assert connection.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        connection.sendall(body)
        answer = b""
        while piece := connection.recv(65536):
            answer += piece
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["object"] == "chat.completion"
