"""The Neurons a worker serves, and the codecs of the chat contract on the bus.

- ``chat``: a ModelSource as a streaming Neuron.  Input: a ChatInput as a dict
  (``chat_input_to_dict``); each TOKEN's payload is ``{"text"}``; the output is a ChatOutput as a
  dict (``chat_output_to_dict``).  CANCEL reaches the source through its RunContext's cancel
  token.  The Axon's capabilities carry the model's name and context size, for the app to show.
- ``count_tokens``: ``{"texts": [...]}`` -> ``{"counts": [...]}``, so the app fits history into
  the worker's context exactly.
- ``tool.<name>``: one per tool of a ToolProvider (the worker's own ModuleSupervisor, which only
  runs approved, enabled modules in the same kernel sandbox as on the app's PC).  Input: the
  tool's arguments; output ``{"ok", "content", "error", "seconds"}``.  A tool whose module is no
  longer running (disabled, approval lost on change) is refused, not run.

``*_from_dict`` is the edge: a dict of the wrong shape raises ``ValueError`` naming the field
(the Axon answers it with ERROR ``bad_input``) before the model or a module sees it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, get_args

from nexus_desktop.bus.axon import Axon, Piece, TaskContext, TaskError, Validator
from nexus_desktop.chat.tool_schema import argument_problems
from nexus_desktop.llm.contract import (
    ChatInput,
    ChatMessage,
    ChatOutput,
    FinishReason,
    ModelSource,
    ReplyStats,
    Role,
    RunContext,
    SamplingSettings,
    TokenEvent,
)
from nexus_desktop.llm.templates import InstructTemplate

if TYPE_CHECKING:
    from nexus_desktop.chat.tools import ToolProvider

_ROLES = frozenset(get_args(Role))
_FINISH = frozenset(get_args(FinishReason))
MAX_MESSAGES = 10_000


def chat_input_to_dict(request: ChatInput) -> dict[str, Any]:
    sampling = dataclasses.asdict(request.sampling)
    sampling["stop"] = list(request.sampling.stop)
    return {
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "sampling": sampling,
        "json_schema": request.json_schema,
        "grammar": request.grammar,
        "continue_last": request.continue_last,
    }


def chat_input_from_dict(data: dict[str, Any]) -> ChatInput:
    """The ChatInput in ``data``; ``ValueError`` names the first field that is wrong."""
    if not isinstance(data, dict):
        raise ValueError("The chat input must be an object")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages or len(raw_messages) > MAX_MESSAGES:
        raise ValueError(f"messages must be a list of 1 to {MAX_MESSAGES} messages")
    messages = []
    for index, raw in enumerate(raw_messages):
        if not isinstance(raw, dict):
            raise ValueError(f"messages[{index}] must be an object with role and content")
        role, content = raw.get("role"), raw.get("content")
        if role not in _ROLES:
            raise ValueError(f"messages[{index}].role must be one of {', '.join(sorted(_ROLES))}")
        if not isinstance(content, str):
            raise ValueError(f"messages[{index}].content must be text")
        messages.append(ChatMessage(role, content))  # type: ignore[arg-type]  # one of _ROLES
    schema, grammar, continue_last = (
        data.get("json_schema"),
        data.get("grammar"),
        data.get("continue_last", False),
    )
    if schema is not None and not isinstance(schema, dict):
        raise ValueError("json_schema must be an object or null")
    if grammar is not None and not isinstance(grammar, str):
        raise ValueError("grammar must be text or null")
    if not isinstance(continue_last, bool):
        raise ValueError("continue_last must be true or false")
    return ChatInput(
        tuple(messages),
        _sampling_from_dict(data.get("sampling", {})),
        json_schema=schema,
        grammar=grammar,
        continue_last=continue_last,
    )


def _sampling_from_dict(raw: Any) -> SamplingSettings:
    if not isinstance(raw, dict):
        raise ValueError("sampling must be an object")
    defaults = SamplingSettings()
    values: dict[str, Any] = {}
    for item in dataclasses.fields(SamplingSettings):
        if item.name not in raw:
            continue
        value, default, where = raw[item.name], getattr(defaults, item.name), f"sampling.{item.name}"
        if item.name == "seed":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"{where} must be a whole number or null")
        elif item.name == "stop":
            if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
                raise ValueError(f"{where} must be a list of text")
            value = tuple(value)
        elif item.name == "template":
            value = None if value is None else _template_from_dict(value, where)
        elif isinstance(default, bool) or isinstance(value, bool):
            raise ValueError(f"{where} must be a number")
        elif isinstance(default, int) and not isinstance(value, int):
            raise ValueError(f"{where} must be a whole number")
        elif isinstance(default, float) and not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number")
        values[item.name] = value
    if values.get("max_tokens", 1) < 1:
        raise ValueError("sampling.max_tokens must be at least 1")
    return SamplingSettings(**values)


def _template_from_dict(raw: Any, where: str) -> InstructTemplate:
    names = {item.name for item in dataclasses.fields(InstructTemplate)}
    if (
        not isinstance(raw, dict)
        or not set(raw) <= names
        or not all(isinstance(v, str) for v in raw.values())
    ):
        raise ValueError(f"{where} must be an object of text fields ({', '.join(sorted(names))})")
    return InstructTemplate(**raw)


def chat_output_to_dict(output: ChatOutput) -> dict[str, Any]:
    return {"text": output.text, "stats": dataclasses.asdict(output.stats), "served_by": output.served_by}


def chat_output_from_dict(data: dict[str, Any]) -> ChatOutput:
    """The ChatOutput in ``data`` (a worker's RESULT); ``ValueError`` names a wrong field."""
    text, stats = data.get("text"), data.get("stats")
    if not isinstance(text, str):
        raise ValueError("text must be text")
    if not isinstance(stats, dict):
        raise ValueError("stats must be an object")
    numbers: dict[str, Any] = {}
    for name in ("prompt_tokens", "completion_tokens"):
        value = stats.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"stats.{name} must be a whole number")
        numbers[name] = value
    for name in ("seconds", "first_token_seconds"):
        value = stats.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"stats.{name} must be a number")
        numbers[name] = float(value)
    context, finish = stats.get("context_size"), stats.get("finish_reason")
    if context is not None and (not isinstance(context, int) or isinstance(context, bool)):
        raise ValueError("stats.context_size must be a whole number or null")
    if finish not in _FINISH:
        raise ValueError(f"stats.finish_reason must be one of {', '.join(sorted(_FINISH))}")
    served_by = data.get("served_by", "")
    if not isinstance(served_by, str):
        raise ValueError("served_by must be text")
    stats = ReplyStats(context_size=context, finish_reason=finish, **numbers)  # type: ignore[arg-type]
    return ChatOutput(text, stats, served_by)


# The Neurons ---------------------------------------------------------------------------------

CHAT_NEURON = "chat"
COUNT_TOKENS_NEURON = "count_tokens"
TOOL_PREFIX = "tool."


def chat_capabilities(source: ModelSource) -> tuple[str, ...]:
    """What the app shows about a worker's model: ``model=NAME`` and ``context_size=N``."""
    return (f"model={source.name}", f"context_size={source.context_size}")


def read_capabilities(capabilities: Iterable[str]) -> dict[str, str]:
    """``("model=x", "context_size=8192")`` -> ``{"model": "x", "context_size": "8192"}``."""
    pairs = (item.split("=", 1) for item in capabilities if "=" in item)
    return {key: value for key, value in pairs}


def chat_axon(source: ModelSource) -> Axon:
    """``source`` as the streaming "chat" Neuron; CANCEL reaches the source's cancel token."""

    async def stream(data: dict[str, Any], task: TaskContext) -> AsyncIterator[Piece | dict[str, Any]]:
        run = RunContext(cancel=task.cancel)
        async for event in source.stream(chat_input_from_dict(data), run):
            if isinstance(event, TokenEvent):
                yield Piece({"text": event.text})
            else:
                yield chat_output_to_dict(event)

    async def call(data: dict[str, Any], task: TaskContext) -> dict[str, Any]:
        output = await source(chat_input_from_dict(data), RunContext(cancel=task.cancel))
        return chat_output_to_dict(output)

    return Axon(
        CHAT_NEURON,
        call,
        stream=stream,
        capabilities=chat_capabilities(source),
        validate=_checked(chat_input_from_dict),
    )


def count_tokens_axon(source: ModelSource) -> Axon:
    async def call(data: dict[str, Any], task: TaskContext) -> dict[str, Any]:
        return {"counts": await source.count_tokens(list(data["texts"]))}

    def validate(data: dict[str, Any]) -> dict[str, Any]:
        texts = data.get("texts") if isinstance(data, dict) else None
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise ValueError("texts must be a list of text")
        return data

    return Axon(COUNT_TOKENS_NEURON, call, validate=validate)


def tool_axons(provider: ToolProvider) -> list[Axon]:
    """One ``tool.<name>`` Axon per tool ``provider`` offers now (approved, enabled, running)."""
    return [
        _tool_axon(provider, tool.name, tool.description, dict(tool.parameters)) for tool in provider.tools()
    ]


def tool_capabilities(description: str, parameters: dict[str, Any]) -> tuple[str, ...]:
    """What the app needs to offer a worker's tool to its model: its description and schema."""
    return (f"description={description}", f"parameters={json.dumps(parameters, separators=(',', ':'))}")


def _tool_axon(provider: ToolProvider, name: str, description: str, parameters: dict[str, Any]) -> Axon:
    async def call(arguments: dict[str, Any], task: TaskContext) -> dict[str, Any]:
        if name not in {tool.name for tool in provider.tools()}:
            # Its module stopped since it was registered (disabled, or its approval lost).
            raise TaskError(
                "refused", f"The tool {name} is no longer offered by this worker; its module is off."
            )
        outcome = await provider.call_tool(name, arguments)
        return {
            "ok": outcome.ok,
            "content": outcome.content,
            "error": outcome.error,
            "seconds": outcome.seconds,
        }

    def validate(arguments: dict[str, Any]) -> dict[str, Any]:
        problems = argument_problems(parameters, arguments)
        if problems:
            raise ValueError(f"The arguments of {name} are wrong: {'; '.join(problems)}")
        return arguments

    return Axon(
        TOOL_PREFIX + name, call, capabilities=tool_capabilities(description, parameters), validate=validate
    )


def _checked(parse: Callable[[dict[str, Any]], object]) -> Validator:
    """A validator that refuses what ``parse`` refuses and hands the Neuron the dict itself."""

    def validate(data: dict[str, Any]) -> dict[str, Any]:
        parse(data)
        return data

    return validate
