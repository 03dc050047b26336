"""Models with strict chat templates still chat: a conversation that opens with the character's
greeting and carries system messages inside it is reshaped for templates that refuse it
(Mistral's alternation rule, Gemma 2's "no system role"), without losing a word.  And a chosen
instruct template (ChatML, Alpaca, Llama 3, a custom one) is what the local model reads."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    ModelError,
    RunContext,
    SamplingSettings,
)
from nexus_desktop.llm.local import LocalLlamaSource
from nexus_desktop.llm.openai_compat import OpenAICompatSource
from nexus_desktop.llm.roles import CHAT_OPENER, alternating, as_given, shapes_from, without_system_role
from nexus_desktop.llm.templates import KNOWN_TEMPLATES, InstructTemplate, from_one_line, one_line
from tests.servers import start_llama_server, stop_llama_server

# The rule of Mistral's templates (7B v0.3, Nemo, Small) and Gemma 2's, as they are written there.
MISTRAL = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{%- endif %}"
    "{%- if message['role'] == 'user' %}{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported!') }}{%- endif %}"
    "{%- endfor %}"
)
GEMMA2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{{ '<start_of_turn>model\\n' }}"
)
REFUSES_ALL = "{{ raise_exception('This template only works inside its own app') }}"

CONVERSATION = (
    ChatMessage("system", "You are Vega, a ship's AI."),
    ChatMessage("assistant", "Welcome back, Captain."),
    ChatMessage("system", "Vega fears the nebula."),
    ChatMessage("user", "Set a course for the nebula."),
    ChatMessage("system", "Answer as Vega."),
)


def as_dicts(messages: tuple[ChatMessage, ...]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def test_the_alternating_shape_opens_with_the_user_and_keeps_every_word() -> None:
    shaped = alternating(as_dicts(CONVERSATION))

    assert shaped == [
        {"role": "system", "content": "You are Vega, a ship's AI."},
        {"role": "user", "content": CHAT_OPENER},
        {"role": "assistant", "content": "Welcome back, Captain."},
        {
            "role": "user",
            "content": "Vega fears the nebula.\n\nSet a course for the nebula.\n\nAnswer as Vega.",
        },
    ]


def test_without_the_system_role_its_text_opens_the_first_user_turn() -> None:
    shaped = without_system_role(as_dicts(CONVERSATION))

    assert [m["role"] for m in shaped] == ["user", "assistant", "user"]
    assert shaped[0]["content"] == f"You are Vega, a ship's AI.\n\n{CHAT_OPENER}"
    assert without_system_role([{"role": "system", "content": "only"}]) == [
        {"role": "user", "content": "only"}
    ]


def test_a_conversation_templates_accept_is_sent_as_it_is() -> None:
    plain = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]

    assert as_given(plain) == plain == alternating(plain)
    assert [index for index, _ in shapes_from(0, plain)] == [0, 2]  # nothing new to retry in 1


@pytest.fixture(scope="module")
def strict_models(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SmolLM2 copies whose GGUF carries another model family's chat template."""
    folder = tmp_path_factory.mktemp("templates")
    models = {}
    for name, template in (("mistral", MISTRAL), ("gemma2", GEMMA2), ("refuses", REFUSES_ALL)):
        target = folder / f"smollm2-{name}.gguf"
        command = [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", "--force"]
        subprocess.run(
            [*command, "--chat-template", template, str(smollm2_path), str(target)],
            check=True,
            capture_output=True,
        )
        models[name] = target
    return models


def reply_from(model: Path, messages: tuple[ChatMessage, ...]) -> ChatOutput:
    async def main() -> ChatOutput:
        source = LocalLlamaSource(model, context_size=1024, threads=1)
        try:
            await source.start()
            sampling = SamplingSettings(temperature=0.0, max_tokens=12, seed=3)
            first = await source(ChatInput(messages=messages, sampling=sampling), RunContext())
            again = await source(ChatInput(messages=messages, sampling=sampling), RunContext())
            assert again.text == first.text  # the shape that worked is kept, and gives the same reply
            return first
        finally:
            await source.aclose()

    return asyncio.run(main())


@pytest.mark.model
@pytest.mark.parametrize("family", ["mistral", "gemma2"])
def test_a_model_with_a_strict_template_answers_a_chat_that_opens_with_a_greeting(
    strict_models: dict[str, Path], family: str
) -> None:
    reply = reply_from(strict_models[family], CONVERSATION)

    assert reply.text.strip()
    assert reply.stats.prompt_tokens > 0


@pytest.mark.model
def test_a_template_that_refuses_every_shape_is_one_clear_error(
    strict_models: dict[str, Path],
) -> None:
    with pytest.raises(ModelError, match=r"chat template refuses this conversation .*pick another model"):
        reply_from(strict_models["refuses"], CONVERSATION)


@pytest.mark.model
def test_a_remote_server_with_a_strict_template_answers_the_same_chat(
    strict_models: dict[str, Path], tmp_path: Path
) -> None:
    server = start_llama_server(strict_models["mistral"], tmp_path)

    async def main() -> ChatOutput:
        source = OpenAICompatSource(server.base_url, server.model, api_key=None)
        try:
            sampling = SamplingSettings(temperature=0.0, max_tokens=12, seed=3)
            return await source(ChatInput(messages=CONVERSATION, sampling=sampling), RunContext())
        finally:
            await source.aclose()

    try:
        reply = asyncio.run(main())
    finally:
        stop_llama_server(server)

    assert reply.text.strip()


# --- Chosen instruct templates ------------------------------------------------------------------

SHORT_CHAT = (
    ChatMessage("system", "You are Vega."),
    ChatMessage("user", "Hello!"),
    ChatMessage("assistant", "Welcome aboard."),
    ChatMessage("user", "Where are we?"),
)


def test_chatml_writes_each_turn_between_its_markers_and_opens_the_reply() -> None:
    prompt = KNOWN_TEMPLATES["chatml"].render(as_dicts(SHORT_CHAT))

    assert prompt == (
        "<|im_start|>system\nYou are Vega.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>assistant\nWelcome aboard.<|im_end|>\n"
        "<|im_start|>user\nWhere are we?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert KNOWN_TEMPLATES["chatml"].stop_strings() == ["<|im_end|>", "<|im_start|>user"]


def test_families_without_a_system_role_write_it_as_a_user_turn() -> None:
    gemma = KNOWN_TEMPLATES["gemma"].render([{"role": "system", "content": "Be brief."}])
    alpaca = KNOWN_TEMPLATES["alpaca"].render(as_dicts(SHORT_CHAT[:2]))

    assert gemma == "<start_of_turn>user\nBe brief.<end_of_turn>\n<start_of_turn>model\n"
    assert alpaca == "You are Vega.\n\n### Instruction:\nHello!\n\n### Response:\n"
    assert KNOWN_TEMPLATES["alpaca"].stop_strings() == ["### Instruction:"]  # a blank suffix stops nothing


def test_a_one_line_field_keeps_new_lines_and_backslashes() -> None:
    for text in ("<|user|>\n", "C:\\path\\n", "\t[INST] ", "plain"):
        assert from_one_line(one_line(text)) == text
    assert one_line("### Instruction:\n") == "### Instruction:\\n"
    assert from_one_line("a\\qb") == "a\\qb"  # an unknown escape stays as typed


def last_prompt_with(model: Path, template: InstructTemplate | None) -> tuple[str, str]:
    """(the prompt the model read, its reply) for SHORT_CHAT with ``template``."""

    async def main() -> tuple[str, str]:
        source = LocalLlamaSource(model, context_size=1024, threads=1)
        try:
            sampling = SamplingSettings(temperature=0.0, max_tokens=40, seed=1, template=template)
            reply = await source(ChatInput(messages=SHORT_CHAT, sampling=sampling), RunContext())
            return await source.last_prompt(), reply.text
        finally:
            await source.aclose()

    return asyncio.run(main())


@pytest.mark.model
def test_the_model_reads_the_prompt_in_the_chosen_template(smollm2_path: Path) -> None:
    alpaca, alpaca_reply = last_prompt_with(smollm2_path, KNOWN_TEMPLATES["alpaca"])
    llama3, _ = last_prompt_with(smollm2_path, KNOWN_TEMPLATES["llama3"])
    custom, _ = last_prompt_with(
        smollm2_path, InstructTemplate(user_prefix="<<Captain>> ", assistant_prefix="<<Vega>> ")
    )
    own, _ = last_prompt_with(smollm2_path, None)

    assert alpaca.endswith("### Instruction:\nWhere are we?\n\n### Response:\n")
    assert "<|im_start|>" not in alpaca
    assert "### Instruction:" not in alpaca_reply  # the template's stop ends the reply there
    assert "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" in llama3
    assert custom.endswith("<<Captain>> Where are we?<<Vega>> ")
    # The control: SmolLM2's own template is ChatML, written by its GGUF's Jinja template.
    assert "<|im_start|>user\nWhere are we?<|im_end|>" in own and "### Instruction:" not in own
