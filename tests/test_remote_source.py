"""The OpenAI-compatible source against a real llama.cpp server and servers that act like other vendors'.

The fixtures come from ``tests/servers.py``, loaded as a plugin by ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ModelSource,
    RemoteServerError,
    RunContext,
    SamplingSettings,
    StreamEvent,
    TokenEvent,
)
from nexus_desktop.llm.openai_compat import OpenAICompatSource
from tests.servers import QUIRKY_MODELS, SERVER_API_KEY, LlamaServer, QuirkyServer, free_port

QUESTION = ChatInput(
    messages=(
        ChatMessage("system", "You are a friendly assistant."),
        ChatMessage("user", "Tell me a short story about a cat."),
    ),
    sampling=SamplingSettings(temperature=0.0, max_tokens=24, seed=1),
)
LONG_QUESTION = ChatInput(
    messages=QUESTION.messages, sampling=SamplingSettings(temperature=0.0, max_tokens=400)
)


def collect(
    source: OpenAICompatSource, request: ChatInput, context: RunContext | None = None
) -> list[StreamEvent]:
    async def run() -> list[StreamEvent]:
        try:
            return [event async for event in source.stream(request, context or RunContext())]
        finally:
            await source.aclose()

    return asyncio.run(run())


def reply_of(events: list[StreamEvent]) -> ChatOutput:
    assert isinstance(events[-1], ChatOutput)
    assert all(isinstance(event, TokenEvent) for event in events[:-1])
    return events[-1]


def error_of(source: OpenAICompatSource, request: ChatInput = QUESTION) -> RemoteServerError:
    with pytest.raises(RemoteServerError) as error:
        collect(source, request)
    return error.value


# -- A real llama.cpp server --------------------------------------------------------------------------


@pytest.mark.model
def test_reply_streams_token_by_token_and_ends_with_stats(llama_server: LlamaServer) -> None:
    source = OpenAICompatSource(llama_server.base_url, llama_server.model, api_key=None, context_size=2048)

    events = collect(source, QUESTION)

    reply = reply_of(events)
    tokens = [event.text for event in events[:-1] if isinstance(event, TokenEvent)]
    assert len(tokens) >= 2
    assert reply.text == "".join(tokens)
    assert reply.text.strip()
    assert reply.stats.finish_reason in ("stop", "length")
    assert 1 <= reply.stats.completion_tokens <= 24
    assert reply.stats.prompt_tokens > 0
    assert reply.stats.first_token_seconds > 0
    assert reply.stats.context_size == 2048


@pytest.mark.model
def test_one_shot_call_returns_the_whole_reply(llama_server: LlamaServer) -> None:
    source = OpenAICompatSource(llama_server.base_url, llama_server.model, api_key=None)
    assert isinstance(source, ModelSource)

    async def ask() -> ChatOutput:
        try:
            return await source(QUESTION, RunContext())
        finally:
            await source.aclose()

    reply = asyncio.run(ask())

    assert reply.text.strip()
    assert reply.stats.completion_tokens >= 1


@pytest.mark.model
def test_cancel_mid_stream_keeps_the_partial_reply_marked_cancelled(llama_server: LlamaServer) -> None:
    source = OpenAICompatSource(llama_server.base_url, llama_server.model, api_key=None)
    context = RunContext()
    events: list[StreamEvent] = []

    async def read_then_cancel() -> None:
        try:
            async for event in source.stream(LONG_QUESTION, context):
                events.append(event)
                if len(events) == 3:
                    context.cancel.cancel()
        finally:
            await source.aclose()

    asyncio.run(read_then_cancel())

    reply = reply_of(events)
    assert reply.stats.finish_reason == "cancelled"
    assert reply.text == "".join(e.text for e in events[:-1] if isinstance(e, TokenEvent))
    assert len(events) - 1 < 400


@pytest.mark.model
def test_model_list_names_the_served_model(llama_server: LlamaServer) -> None:
    source = OpenAICompatSource(llama_server.base_url, llama_server.model, api_key=None)

    async def ask() -> list[str]:
        try:
            return await source.list_models()
        finally:
            await source.aclose()

    assert asyncio.run(ask()) == [llama_server.model]


@pytest.mark.model
def test_wrong_key_is_refused_with_a_message_that_never_shows_the_key(
    llama_server_with_key: LlamaServer,
) -> None:
    wrong_key = "wrong-key-5678-abcdef"
    source = OpenAICompatSource(
        llama_server_with_key.base_url, llama_server_with_key.model, api_key=wrong_key
    )

    error = error_of(source)

    assert "refused the API key" in str(error)
    assert "update the key in Settings → Remote server" in str(error)
    assert wrong_key not in str(error)

    async def check() -> None:
        try:
            await source.check()
        finally:
            await source.aclose()

    with pytest.raises(RemoteServerError, match="refused the API key") as checking:
        asyncio.run(check())
    assert wrong_key not in str(checking.value)


@pytest.mark.model
def test_missing_key_asks_for_one(llama_server_with_key: LlamaServer) -> None:
    source = OpenAICompatSource(llama_server_with_key.base_url, llama_server_with_key.model, api_key=None)

    assert "needs an API key" in str(error_of(source))


@pytest.mark.model
def test_right_key_streams_and_never_appears_in_the_logs(
    llama_server_with_key: LlamaServer, log_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = llama_server_with_key
    caplog.set_level(logging.DEBUG)
    source = OpenAICompatSource(server.base_url, server.model, api_key=SERVER_API_KEY)

    reply = reply_of(collect(source, QUESTION))
    logging.getLogger("nexus_desktop.test").info(
        "sent headers %s", {"Authorization": f"Bearer {SERVER_API_KEY}"}
    )
    logging.getLogger("nexus_desktop.test").debug("the key is %s", SERVER_API_KEY)

    assert reply.text.strip()
    assert "HTTP Request: POST" in caplog.text  # httpx did log the request ...
    assert SERVER_API_KEY not in caplog.text  # ... but never the key.
    log_text = log_file.read_text(encoding="utf-8")
    assert "the key is ***" in log_text
    assert SERVER_API_KEY not in log_text


# -- Unreachable servers ------------------------------------------------------------------------------


def test_unreachable_server_fails_with_the_address_and_what_to_check() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    source = OpenAICompatSource(base_url, "any", api_key="k-unreachable-1")

    error = error_of(source)

    assert str(error) == (
        f"Cannot reach {base_url} — is the server running? Check the address in Settings → Remote server."
    )


def test_unreachable_server_fails_the_model_list_too() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    source = OpenAICompatSource(base_url, "any", api_key=None)

    with pytest.raises(RemoteServerError, match="Cannot reach"):
        asyncio.run(source.list_models())


def test_address_that_is_not_http_is_explained() -> None:
    source = OpenAICompatSource("127.0.0.1:11434/v1", "any", api_key=None)

    assert "is not a valid http(s) address" in str(error_of(source))


# -- Other vendors' habits ----------------------------------------------------------------------------


def test_ollama_style_stream_uses_the_servers_token_counts(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("ollama"), QUIRKY_MODELS[0], api_key=None)

    events = collect(source, QUESTION)

    reply = reply_of(events)
    assert [e.text for e in events[:-1] if isinstance(e, TokenEvent)] == ["Hello", " there", "!"]
    assert reply.text == "Hello there!"
    assert (reply.stats.prompt_tokens, reply.stats.completion_tokens) == (17, 3)
    assert reply.stats.finish_reason == "stop"
    assert quirky_server.requests[-1]["stream_options"] == {"include_usage": True}


def test_stream_without_done_or_usage_still_ends_with_counted_stats(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("no-done"), QUIRKY_MODELS[0], api_key=None)

    reply = reply_of(collect(source, QUESTION))

    assert reply.text == "Hi you"
    assert reply.stats.completion_tokens == 2
    assert reply.stats.finish_reason == "length"


def test_error_in_the_middle_of_a_stream_reports_the_servers_message(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("midstream-error"), QUIRKY_MODELS[0], api_key=None)

    error = error_of(source)

    assert "stopped the reply with an error: CUDA out of memory" in str(error)


def test_llama_cpp_error_line_reports_the_servers_message(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("llamacpp-error"), QUIRKY_MODELS[0], api_key=None)

    assert "slot unavailable" in str(error_of(source))


def test_malformed_stream_is_reported_as_not_openai_compatible(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("malformed"), QUIRKY_MODELS[0], api_key=None)

    assert "not an OpenAI-compatible stream" in str(error_of(source))


def test_server_failure_passes_on_the_servers_message(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("boom"), QUIRKY_MODELS[0], api_key=None)

    assert str(error_of(source)) == (
        f"The server at {quirky_server.base_url('boom')} failed (HTTP 500): llama_decode failed"
    )


def test_server_error_that_echoes_the_key_is_masked(quirky_server: QuirkyServer) -> None:
    key = "echoed-key-31337-zzz"
    source = OpenAICompatSource(quirky_server.base_url("echo-auth"), QUIRKY_MODELS[0], api_key=key)

    error = error_of(source)

    assert "HTTP 502" in str(error)
    assert key not in str(error)


def test_unknown_model_lists_the_available_ones(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("ollama"), "mistral:7b", api_key=None)

    message = str(error_of(source))

    assert "has no model named 'mistral:7b'" in message
    assert "llama3.2:1b, qwen2.5:0.5b" in message


def test_server_that_rejects_stream_options_is_asked_again_without_them(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("strict"), QUIRKY_MODELS[0], api_key=None)

    reply = reply_of(collect(source, QUESTION))

    assert reply.text == "Fine."
    assert "stream_options" not in quirky_server.requests[-1]


def test_server_that_ignores_stream_and_sends_one_json_body_still_works(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("json-only"), QUIRKY_MODELS[0], api_key=None)

    events = collect(source, QUESTION)

    reply = reply_of(events)
    assert reply.text == "Whole reply."
    assert reply.stats.completion_tokens == 3


def test_silent_server_times_out_with_a_clear_message(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("slow"), QUIRKY_MODELS[0], api_key=None, timeout=1)

    assert "did not answer within 1 second" in str(error_of(source))


def test_cancel_while_waiting_for_the_first_token_ends_with_an_empty_cancelled_reply(
    quirky_server: QuirkyServer,
) -> None:
    source = OpenAICompatSource(quirky_server.base_url("slow"), QUIRKY_MODELS[0], api_key=None, timeout=60)
    context = RunContext()

    async def cancel_soon() -> list[StreamEvent]:
        asyncio.get_running_loop().call_later(0.3, context.cancel.cancel)
        try:
            return [event async for event in source.stream(QUESTION, context)]
        finally:
            await source.aclose()

    events = asyncio.run(cancel_soon())

    assert len(events) == 1
    reply = reply_of(events)
    assert reply.text == ""
    assert reply.stats.finish_reason == "cancelled"


def test_model_list_of_an_ollama_style_server(quirky_server: QuirkyServer) -> None:
    source = OpenAICompatSource(quirky_server.base_url("ollama"), QUIRKY_MODELS[0], api_key=None)

    assert asyncio.run(source.check()) == list(QUIRKY_MODELS)


def test_token_counts_are_estimates_of_four_characters_each() -> None:
    source = OpenAICompatSource("http://127.0.0.1:1/v1", "any", api_key=None)

    assert asyncio.run(source.count_tokens(["", "abcd", "abcde"])) == [0, 1, 2]
