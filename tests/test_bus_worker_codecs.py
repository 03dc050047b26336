"""The chat contract on the bus: ChatInput/ChatOutput survive the trip as JSON, a malformed input
is refused naming its field, and the worker's CLI refuses bad flags with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_desktop.bus.neurons import (
    chat_input_from_dict,
    chat_input_to_dict,
    chat_output_from_dict,
    chat_output_to_dict,
    read_capabilities,
)
from nexus_desktop.bus.remote_source import continuation
from nexus_desktop.bus.worker_service import parse_serve
from nexus_desktop.llm.contract import ChatInput, ChatMessage, ChatOutput, ReplyStats, SamplingSettings
from nexus_desktop.llm.templates import KNOWN_TEMPLATES

FULL = ChatInput(
    (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi ☃"), ChatMessage("assistant", "Hel")),
    SamplingSettings(
        temperature=0.2, max_tokens=7, seed=3, stop=("\nUser:",), template=KNOWN_TEMPLATES["chatml"]
    ),
    json_schema={"type": "object"},
    grammar='root ::= "a"',
    continue_last=True,
)


def test_a_chat_input_comes_back_equal_after_json() -> None:
    assert chat_input_from_dict(json.loads(json.dumps(chat_input_to_dict(FULL)))) == FULL
    plain = ChatInput((ChatMessage("user", "hello"),))
    assert chat_input_from_dict(json.loads(json.dumps(chat_input_to_dict(plain)))) == plain


def test_a_chat_output_comes_back_equal_with_who_served_it() -> None:
    output = ChatOutput("Hello.", ReplyStats(12, 3, 0.5, 0.1, 8192, "stop"), served_by="gpc2")
    assert chat_output_from_dict(json.loads(json.dumps(chat_output_to_dict(output)))) == output
    assert ChatOutput("x", output.stats).served_by == ""  # a local reply names nobody


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"sampling": {"temperature": "hot"}}, "sampling.temperature"),
        ({"sampling": {"max_tokens": 0}}, "sampling.max_tokens"),
        ({"sampling": {"max_tokens": 2.5}}, "sampling.max_tokens"),
        ({"sampling": {"stop": "x"}}, "sampling.stop"),
        ({"sampling": {"seed": True}}, "sampling.seed"),
        ({"sampling": {"template": {"nonsense": "x"}}}, "sampling.template"),
        ({"continue_last": "yes"}, "continue_last"),
        ({"json_schema": "object"}, "json_schema"),
    ],
)
def test_a_malformed_chat_input_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    good = chat_input_to_dict(FULL)
    assert chat_input_from_dict(good) == FULL  # the positive control
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        chat_input_from_dict({**good, **change})


def test_a_malformed_output_is_refused_naming_the_field() -> None:
    good = chat_output_to_dict(ChatOutput("a", ReplyStats(1, 1, 0.1, 0.1, None, "length")))
    assert chat_output_from_dict(good).stats.finish_reason == "length"
    with pytest.raises(ValueError, match=r"stats\.finish_reason"):
        chat_output_from_dict({**good, "stats": {**good["stats"], "finish_reason": "bored"}})
    with pytest.raises(ValueError, match="text"):
        chat_output_from_dict({**good, "text": None})


def test_a_continuation_carries_the_partial_reply_and_what_is_left_of_the_allowance() -> None:
    asked = ChatInput((ChatMessage("user", "Count"),), SamplingSettings(max_tokens=20))
    more = continuation(asked, "One, two,", tokens=4)
    assert more.continue_last and more.messages[-1] == ChatMessage("assistant", "One, two,")
    assert more.sampling.max_tokens == 16
    # Continuing a reply that was itself a continuation extends the same assistant message.
    again = continuation(more, " three,", tokens=19)
    assert again.messages[-1] == ChatMessage("assistant", "One, two, three,")
    assert again.sampling.max_tokens == 1 and len(again.messages) == 2


def test_capabilities_and_serve_flags_read_back() -> None:
    assert read_capabilities(("model=a=b.gguf", "context_size=8192", "plain")) == {
        "model": "a=b.gguf",
        "context_size": "8192",
    }
    assert parse_serve("tools, model") == frozenset({"model", "tools"})
    with pytest.raises(ValueError, match="--serve takes"):
        parse_serve("model,gpu")


def _nexus(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "nexus_desktop.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_the_worker_command_refuses_bad_flags_with_one_line(tmp_path: Path) -> None:
    nowhere = "nats://127.0.0.1:1"
    missing = _nexus("worker", "--connect", nowhere, "--credentials", "nope.creds", data=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "nexus: error: --credentials nope.creds: no such file. Check the path."
    wrong = _nexus("worker", "--connect", "nats://127.0.0.1:1", "--serve", "gpu", data=tmp_path)
    assert wrong.returncode == 1 and "--serve takes model, tools" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
