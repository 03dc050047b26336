"""How the llama.cpp worker writes a prompt: with a chosen instruct template, or with the model's
own chat template in the first conversation shape it accepts; and, for Continue, ending with an
unfinished reply.  Runs inside the worker process, where llama_cpp may be imported.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nexus_desktop.llm.templates import InstructTemplate


class TemplateRefused(Exception):
    """The model's chat template refused the conversation in every shape."""


def start_chat(
    llm: Any,
    shape: int,
    messages: list[dict[str, Any]],
    template: dict[str, str] | None,
    continue_last: bool,
    **options: Any,
) -> tuple[Any, int]:
    """Start a reply; returns its stream and the shape (an index into ``roles.SHAPES``) that the
    model's own template took, to try first next time (``shape`` when no shape was tried).

    A chosen instruct template writes the prompt; the model's own chat template, when it refuses
    the conversation, gets it in a stricter shape, beginning at ``shape``.  ``continue_last``: the
    prompt ends with the last message's text, an unfinished reply.

    llama-cpp-python renders the template when called, before any token (a template's
    ``raise_exception`` is a ValueError), so a refused shape costs nothing to retry.
    """
    from jinja2 import TemplateError

    from nexus_desktop.llm.roles import shapes_from

    if template is not None:
        handler = chat_handler(instruct_formatter(InstructTemplate(**template)), continue_last)
        return handler(llama=llm, messages=messages, **options), shape
    own = chat_handler(own_formatter(llm), continue_last=True) if continue_last else None
    refusals = []
    for index, shaped in shapes_from(shape, messages):
        try:
            if own is not None:
                stream = own(llama=llm, messages=shaped, **options)
            else:
                stream = llm.create_chat_completion(messages=shaped, **options)
        except (ValueError, TemplateError) as error:
            refusals.append(str(error))
            continue
        return stream, index
    raise TemplateRefused(refusals[0])


def own_formatter(llm: Any) -> Any:
    """The model's own chat template (its GGUF's), as the formatter llama-cpp-python makes of it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise TemplateRefused("the model file carries no chat template of its own")
    eos, bos = llm.token_eos(), llm.token_bos()

    def text(token: int) -> str:
        return str(llm._model.token_get_text(token)) if token != -1 else ""

    return Jinja2ChatFormatter(template, eos_token=text(eos), bos_token=text(bos), stop_token_ids=[eos])


def instruct_formatter(template: InstructTemplate) -> Any:
    """A llama-cpp-python chat formatter that writes the prompt with ``template``."""
    from llama_cpp.llama_chat_format import ChatFormatterResponse

    def formatter(*, messages: list[Any], **_unused: Any) -> Any:
        return ChatFormatterResponse(prompt=template.render(messages), stop=template.stop_strings())

    return formatter


def chat_handler(formatter: Any, continue_last: bool) -> Any:
    """A llama-cpp-python chat handler that writes the prompt with ``formatter``: its streaming,
    stop strings, grammar and JSON-schema handling stay llama-cpp-python's own.

    ``continue_last``: the last message is an unfinished reply.  The messages before it are
    written as for a new reply, ending where the assistant's turn begins, and the reply's text
    follows with no end-of-turn after it, so the model goes on from its last word (SillyTavern's
    Continue in text-completion mode).
    """
    from llama_cpp.llama_chat_format import chat_formatter_to_chat_completion_handler

    def continuing(*, messages: list[Any], **kwargs: Any) -> Any:
        *before, unfinished = messages
        response = formatter(messages=before, **kwargs)
        return replace(response, prompt=response.prompt + str(unfinished.get("content") or ""))

    return chat_formatter_to_chat_completion_handler(continuing if continue_last else formatter)
