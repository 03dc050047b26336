"""The module builder's benchmark suite: graded module requests, the good answers the scripted
"strong" source replays, and acceptance checks the generator never sees.

Each :class:`Request` is one "build me X" text (``description``), a recording of a good answer
(``answer``: the module's files, as a strong model would write them, own tests included) and its
acceptance checks (``checks``: tool calls on the approved module with the answer each must give).
The checks are kept here, in the benchmark, and are never part of a prompt.

API requests name the address of a local HTTP API (``benchmarks/module_requests/api_server.py``)
started by the benchmark, so their texts and answers are made for that address (``suite(base)``).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Expected = Callable[[Any], bool] | object


@dataclass(frozen=True)
class Check:
    """Call ``tool`` (without the module's prefix) with ``arguments``; the answer (JSON-decoded
    when it is JSON) must equal ``expect``, or satisfy it when ``expect`` is a predicate."""

    tool: str
    arguments: dict[str, Any]
    expect: Expected
    what: str = ""

    def passes(self, content: str) -> bool:
        try:
            value: Any = json.loads(content)
        except ValueError:
            value = content
        if callable(self.expect):
            try:
                return bool(self.expect(value))
            except Exception:  # a wrong shape of answer is a failed check, not a crash
                return False
        return bool(value == self.expect)


@dataclass(frozen=True)
class Request:
    name: str
    """The module name the request asks for (so its tools are ``name.tool``)."""
    category: str
    """pure, parsing, pagination, api-key or retries: the graded groups of the suite."""
    level: int
    """1 (easy) to 3 (hard), within and across categories."""
    description: str
    answer: dict[str, str]
    checks: tuple[Check, ...]
    credentials: dict[str, str] = field(default_factory=dict)
    """Secrets the benchmark enters after approval, as the user would."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: str


def module_files(
    name: str,
    description: str,
    code: str,
    tools: list[Tool],
    tests: str,
    *,
    network: list[str] | None = None,
    credential: str | None = None,
) -> dict[str, str]:
    """A generated module's files as a good model writes them from the builder's template:
    manifest (origin generated), package with hooks, and a tests file the validation runs (the
    builder adds ``conftest.py`` itself).

    ``code`` holds the module's functions; a ``credential`` (its name) arrives at ``startup`` in
    ``CREDENTIALS`` so the functions can read it."""
    package = name.replace("-", "_").replace(".", "_")
    hooks = ["startup", "register_tools"] if credential else ["register_tools"]
    manifest = [
        f'name = "{name}"',
        'version = "1.0.0"',
        f"display_name = {json.dumps(name.replace('-', ' ').title())}",
        f"description = {json.dumps(description)}",
        'author = "NEXUS builder"',
        'category = "tools"',
        f'entry_point = "{package}.hooks:plugin"',
        f"hooks = {json.dumps(hooks)}",
        f'test_file = "tests/test_{package}.py"',
        'origin = "generated"',
    ]
    if network:
        manifest += ["", "[permissions]", f"network = {json.dumps(network)}"]
    if credential:
        manifest += [
            "",
            "[[credentials]]",
            f'name = "{credential}"',
            'instructions = "Paste the API key the service gave you."',
        ]
    registrations = "".join(
        f"        register(ToolSpec({json.dumps(f'{name}.{tool.name}')}, {json.dumps(tool.description)}, "
        f"{tool.parameters!r}, {tool.function}))\n"
        for tool in tools
    )
    startup = (
        "    @hookimpl\n"
        "    def startup(self, app_info):\n"
        "        CREDENTIALS.clear()\n"
        '        CREDENTIALS.update(app_info.get("credentials") or {})\n\n'
        if credential
        else ""
    )
    hooks_py = (
        "from nexus_desktop.modules.hookspecs import hookimpl\n"
        "from nexus_desktop.modules.specs import ToolSpec\n\n"
        + textwrap.dedent(code).strip()
        + "\n\n\nclass Plugin:\n"
        + startup
        + "    @hookimpl\n    def register_tools(self, register):\n"
        + registrations
        + "\n\nplugin = Plugin()\n"
    )
    return {
        "nexus-module.toml": "\n".join(manifest) + "\n",
        f"{package}/__init__.py": "",
        f"{package}/hooks.py": hooks_py,
        f"tests/test_{package}.py": f"from {package}.hooks import *  # noqa: F403\n\n\n"
        + textwrap.dedent(tests).strip()
        + "\n",
    }


def schema(**properties: str) -> dict[str, Any]:
    """A tool's parameters: every named property required, typed as given (``"string"``...)."""
    return {
        "type": "object",
        "properties": {key: {"type": kind} for key, kind in properties.items()},
        "required": list(properties),
    }


def suite(api_base: str) -> list[Request]:
    """Every request, easiest first; API requests talk to ``api_base`` (``http://127.0.0.1:PORT``)."""
    from benchmarks.module_requests import api, parsing, pure

    return [*pure.requests(), *parsing.requests(), *api.requests(api_base)]
