"""Tool calling for characters: which tools there are, how a call is decided, and running one.

A tool gets called in one of two ways:

- a command the user types, ``/roll 2d6``: matched without the model, so it always works;
- the model's decision, asked in two constrained steps that even a 135M model follows: first a
  tool name (or ``none``) under a GBNF grammar, then that tool's arguments as JSON under the
  tool's own schema.  A one-step ``anyOf`` schema made SmolLM2 answer ``none`` to everything.

Arguments are checked against the tool's schema (``tool_schema``) before anything runs,
whoever chose them; commands are parsed in ``commands``.
Where tools run is behind ``ToolProvider``: ``InProcessTools`` loads plugins into this process
(the app's built-ins, and tests); user modules run out of process in the module supervisor,
which satisfies the same protocol.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from nexus_desktop import __version__, paths
from nexus_desktop.chat.tool_schema import argument_problems, model_schema
from nexus_desktop.llm.contract import ChatInput, ChatMessage, ModelSource, RunContext, SamplingSettings
from nexus_desktop.modules.manifest import load_manifest
from nexus_desktop.modules.registry import make_plugin_manager
from nexus_desktop.modules.runtime.protocol import ToolResult
from nexus_desktop.modules.specs import ToolSpec

log = logging.getLogger(__name__)

NO_TOOL = "none"
DEFAULT_TIMEOUT_SECONDS = 30.0
_DECIDE_SAMPLING = SamplingSettings(temperature=0.0, max_tokens=32, seed=0)
_ARGUMENTS_SAMPLING = SamplingSettings(temperature=0.0, max_tokens=200, seed=0)
_DECIDE_PROMPT = (
    "Pick the tool that answers the user's last message, or none.\nTools:\n{tools}\n"
    "- none: no tool is needed, just talk.\nAnswer with the tool name only."
)
_ARGUMENTS_PROMPT = (
    "Fill in the arguments of the tool {name} ({description}) for the user's last message. "
    "Answer with JSON only."
)


class ToolInfo(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def parameters(self) -> Mapping[str, Any]: ...


class ToolOutcome(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def content(self) -> str: ...
    @property
    def error(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...


class ToolProvider(Protocol):
    """Where tools come from and run: ``InProcessTools`` here, ``ModuleSupervisor`` for modules."""

    def tools(self) -> Sequence[ToolInfo]: ...

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Run a tool; a failing tool gives ``ok=False`` and a one-sentence ``error``, never raises."""
        ...


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    via: Literal["command", "model", "router"]


@dataclass(frozen=True)
class LocalTool:
    name: str
    description: str
    parameters: Mapping[str, Any]
    module: str


# Tools in this process ----------------------------------------------------------------------


class InProcessTools:
    """Tools of plugins loaded into this process, through pluggy's ``register_tools`` hook.

    For the app's built-ins and for tests: a plugin loaded here runs with the app's rights.
    Modules a person installed belong in the out-of-process module supervisor.
    """

    def __init__(self, *, builtins: bool = True, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._specs: dict[str, tuple[ToolSpec, str]] = {}
        self._loading = "nexus"
        self.manager = make_plugin_manager(builtins=builtins)
        # Historic: every plugin registered later is asked at once, and its tools land here.
        self.manager.hook.register_tools.call_historic(kwargs={"register": self._register})

    def _register(self, spec: ToolSpec) -> None:
        if spec.name in self._specs:
            log.warning("Tool %s from %s is already registered; keeping the first", spec.name, self._loading)
            return
        self._specs[spec.name] = (spec, self._loading)

    def add_plugin(self, plugin: object, name: str, app_info: Mapping[str, Any] | None = None) -> None:
        """Register ``plugin`` under ``name``, call its ``startup`` with ``app_info`` and take its tools."""
        self._loading = name
        try:
            self.manager.register(plugin, name=name)
            for impl in self.manager.hook.startup.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(app_info=dict(app_info or {}))
        finally:
            self._loading = "nexus"

    def load_folder(
        self, folder: Path, *, bundled: bool = True, app_info: Mapping[str, Any] | None = None
    ) -> str:
        """Import the module in ``folder`` (manifest checked first) and add it; returns its name.

        Its ``startup`` gets what the module supervisor gives it: ``version``, ``data_dir`` and
        ``module_dir`` (both its own writable folder under the data dir), ``code_dir`` and
        ``credentials``, with ``app_info`` on top.
        """
        manifest = load_manifest(folder, bundled=bundled)
        module_path, _, attribute = manifest.entry_point.partition(":")
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        target: Any = importlib.import_module(module_path)
        for part in attribute.split("."):
            target = getattr(target, part)
        own_data = paths.data_dir() / "module-data" / manifest.name
        info = {
            "version": __version__,
            "data_dir": str(own_data),
            "module_dir": str(own_data),
            "code_dir": str(folder.resolve()),
            "credentials": {},
            **(app_info or {}),
        }
        self.add_plugin(target, manifest.name, info)
        return manifest.name

    def tools(self) -> list[LocalTool]:
        return [
            LocalTool(spec.name, spec.description, dict(spec.parameters), module)
            for spec, module in self._specs.values()
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        entry = self._specs.get(name)
        if entry is None:
            return ToolResult(False, "", f"There is no tool called {name}; check that its module is on.")
        spec = entry[0]
        problems = argument_problems(spec.parameters, arguments)
        if problems:
            return ToolResult(False, "", f"{name} was given wrong arguments: {'; '.join(problems)}.")
        started = time.perf_counter()
        try:
            value = await asyncio.wait_for(asyncio.to_thread(spec.function, **arguments), self.timeout)
        except TimeoutError:
            seconds = time.perf_counter() - started
            return ToolResult(
                False, "", f"{name} took longer than {self.timeout:g} seconds and was given up.", seconds
            )
        except Exception as error:
            log.info("Tool %s failed: %r", name, error)
            return ToolResult(False, "", str(error) or type(error).__name__, time.perf_counter() - started)
        content = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return ToolResult(True, content, None, time.perf_counter() - started)


class CombinedTools:
    """Several providers offered as one: the app's own built-in tools first, then the modules'.

    A name two providers offer is the first one's; a call goes to the provider that offers it.
    """

    def __init__(self, *providers: ToolProvider | None) -> None:
        self._providers = [p for p in providers if p is not None]

    def _owners(self) -> dict[str, tuple[ToolInfo, ToolProvider]]:
        owners: dict[str, tuple[ToolInfo, ToolProvider]] = {}
        for provider in self._providers:
            for tool in provider.tools():
                owners.setdefault(tool.name, (tool, provider))
        return owners

    def tools(self) -> list[ToolInfo]:
        return [tool for tool, _ in self._owners().values()]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        owner = self._owners().get(name)
        if owner is None:
            return ToolResult(False, "", f"There is no tool called {name}; check that its module is on.")
        return await owner[1].call_tool(name, arguments)


# The model's decision -----------------------------------------------------------------------


def _grammar_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def decide_tool_call(
    source: ModelSource,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolInfo],
    *,
    context: RunContext | None = None,
) -> ToolCall | None:
    """Ask the model whether the last user message needs a tool; None when it does not.

    Anything but a known tool name and arguments valid against its schema counts as "no tool",
    so a source that ignores grammars (some remote servers) simply never calls one.
    """
    last = next((m.content for m in reversed(messages) if m.role == "user"), "")
    if not tools or not last.strip():
        return None
    context = context or RunContext()
    listing = "\n".join(f"- {tool.name}: {tool.description}" for tool in tools)
    names = [tool.name for tool in tools]
    grammar = "root ::= " + " | ".join(_grammar_literal(name) for name in [*names, NO_TOOL])
    pick = ChatInput(
        messages=(
            ChatMessage("system", _DECIDE_PROMPT.format(tools=listing)),
            # One worked example of "no tool": without it small models call a tool for small talk.
            ChatMessage("user", "How are you today?"),
            ChatMessage("assistant", NO_TOOL),
            ChatMessage("user", last),
        ),
        sampling=_DECIDE_SAMPLING,
        grammar=grammar,
    )
    chosen = await source(pick, context)
    name = chosen.text.strip()
    if chosen.stats.finish_reason == "cancelled" or name not in names:
        return None
    tool = next(tool for tool in tools if tool.name == name)
    arguments = await fill_arguments(source, tool, last, context=context)
    return ToolCall(name, arguments, "model") if arguments is not None else None


async def fill_arguments(
    source: ModelSource, tool: ToolInfo, request: str, *, context: RunContext | None = None
) -> dict[str, Any] | None:
    """The model's arguments for ``tool`` given the user's ``request``; None unless valid JSON
    that fits the tool's schema."""
    if not tool.parameters.get("properties"):
        return {}
    fill = ChatInput(
        messages=(
            ChatMessage("system", _ARGUMENTS_PROMPT.format(name=tool.name, description=tool.description)),
            ChatMessage("user", request),
        ),
        sampling=_ARGUMENTS_SAMPLING,
        json_schema=model_schema(tool.parameters),
    )
    filled = await source(fill, context or RunContext())
    if filled.stats.finish_reason == "cancelled":
        return None
    try:
        arguments = json.loads(filled.text)
    except json.JSONDecodeError:
        log.info("The model's arguments for %s are not JSON: %r", tool.name, filled.text[:200])
        return None
    if not isinstance(arguments, dict) or argument_problems(tool.parameters, arguments):
        log.info("The model's arguments for %s do not fit its schema: %r", tool.name, arguments)
        return None
    return arguments


# What a call leaves in the chat -------------------------------------------------------------


@dataclass(frozen=True)
class ToolRecord:
    """A finished call as stored with the ``tool`` message (in its stats slot) and shown."""

    tool: str
    arguments: dict[str, Any]
    via: str
    ok: bool
    result: str
    error: str | None
    seconds: float

    @classmethod
    def of(cls, call: ToolCall, outcome: ToolOutcome) -> ToolRecord:
        return cls(
            call.name,
            call.arguments,
            call.via,
            outcome.ok,
            outcome.content,
            outcome.error,
            round(outcome.seconds, 3),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            "via": self.via,
            "ok": self.ok,
            "result": self.result,
            "error": self.error,
            "seconds": self.seconds,
        }

    def call_text(self) -> str:
        """``dice.roll(notation="2d6")``."""
        shown = ", ".join(
            f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in self.arguments.items()
        )
        return f"{self.tool}({shown})"

    def message_text(self) -> str:
        """The ``tool`` message's content: the call on one line, then the result or the error."""
        outcome = self.result if self.ok else f"Failed: {self.error}"
        return f"{self.call_text()}\n{outcome}"


def tool_turn_text(content: str) -> str:
    """How a stored ``tool`` message reads inside the prompt (folded into the user's turn)."""
    call, _, outcome = content.partition("\n")
    return f"[Tool {call} returned: {outcome}]"


def tools_for_card(extensions: Mapping[str, Any], tools: Sequence[ToolInfo]) -> list[ToolInfo]:
    """The tools a character may use: all of them, unless its card lists some.

    A card limits them with ``extensions.nexus.tools``: tool names or module prefixes
    (``["dice", "notes.recall"]``), or ``[]`` for none.
    """
    nexus = extensions.get("nexus")
    allowed = nexus.get("tools") if isinstance(nexus, Mapping) else None
    if not isinstance(allowed, list):
        return list(tools)
    wanted = [str(item) for item in allowed]
    return [tool for tool in tools if any(tool.name == w or tool.name.startswith(w + ".") for w in wanted)]
