"""The tools workers serve, offered to the app's chat like its own modules' tools.

A ``nexus worker --serve tools`` announces one ``tool.<name>`` Neuron per tool of the modules
approved and enabled on its machine, with the tool's description and parameter schema in the
Neuron's capabilities.  ``BusTools`` is the app's ToolProvider for them: the chat (typed
commands, the model's own tool choice) sees them beside the local tools, a local tool of the same
name wins (``CombinedTools`` asks local providers first), and a call goes to the least busy worker
serving it, where it runs under that machine's approval and sandbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexus_desktop.bus.axon import TaskError
from nexus_desktop.bus.dendrite import Dendrite
from nexus_desktop.bus.neurons import TOOL_PREFIX, read_capabilities
from nexus_desktop.bus.synapse import BusError
from nexus_desktop.modules.runtime.protocol import ToolResult

log = logging.getLogger(__name__)

TOOL_CALL_SECONDS = 60.0
"""A remote tool call's limit (the worker's own supervisor bounds the module's run too)."""


@dataclass(frozen=True)
class RemoteTool:
    name: str
    description: str
    parameters: Mapping[str, Any]
    worker: str
    """A worker serving it (one of them, for the tools list)."""


class BusTools:
    def __init__(self, dendrite: Dendrite) -> None:
        self._dendrite = dendrite

    def tools(self) -> list[RemoteTool]:
        found: dict[str, RemoteTool] = {}
        for worker in self._dendrite.workers():
            for neuron in worker.neurons:
                name = neuron.removeprefix(TOOL_PREFIX)
                if not neuron.startswith(TOOL_PREFIX) or name in found:
                    continue
                tool = _described(name, worker.name, worker.capabilities.get(neuron, ()))
                if tool is not None:
                    found[name] = tool
        return list(found.values())

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        try:
            answer = await self._dendrite.dispatch_and_wait(
                TOOL_PREFIX + name, arguments, timeout=TOOL_CALL_SECONDS
            )
        except TaskError as error:
            return ToolResult(False, "", str(error))
        except BusError as error:
            return ToolResult(False, "", f"The tool {name} could not be reached on the bus: {error}")
        output = answer.output
        return ToolResult(
            output.get("ok") is True,
            str(output.get("content") or ""),
            str(output["error"]) if output.get("error") else None,
            float(output.get("seconds") or 0.0),
        )


def _described(name: str, worker: str, capabilities: tuple[str, ...]) -> RemoteTool | None:
    """The tool as its worker described it; None (and a log line) when the description is unusable."""
    described = read_capabilities(capabilities)
    try:
        parameters = json.loads(described.get("parameters", ""))
    except ValueError:
        parameters = None
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        log.warning("The worker %s offers the tool %s without a usable schema; it is left out", worker, name)
        return None
    return RemoteTool(name, described.get("description", ""), parameters, worker)
