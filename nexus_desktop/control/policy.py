"""A character's policy: what the governor lets it spend.  Every field is optional; an unset
field imposes nothing.  Stored as JSON in ``character_policy`` and edited in the character editor.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class PolicyError(ValueError):
    """A policy that cannot be obeyed; ``str()`` names the fields and what to change."""


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_reply_tokens: int | None = Field(default=None, ge=1)
    """The longest reply, in tokens (caps the app's own reply length)."""
    tool_rounds_per_reply: int | None = Field(default=None, ge=0)
    """How many tool calls one reply may make; 0 offers no tools."""
    daily_token_budget: int | None = Field(default=None, ge=1)
    """Prompt plus reply tokens per local day."""
    daily_tool_calls: int | None = Field(default=None, ge=0)
    """Tool calls per local day."""
    tool_cooldowns: dict[str, float] = Field(default_factory=dict)
    """Tool name -> seconds after a use before the tool is offered again."""
    tool_prerequisites: dict[str, list[str]] = Field(default_factory=dict)
    """Tool name -> tools that must have been used earlier in the same chat."""

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        problems = contradictions(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def empty(self) -> bool:
        return self == Policy()


def contradictions(policy: Policy) -> list[str]:
    """Limits that cannot all hold at once, each naming the fields involved."""
    problems: list[str] = []
    if (
        policy.max_reply_tokens is not None
        and policy.daily_token_budget is not None
        and policy.max_reply_tokens > policy.daily_token_budget
    ):
        problems.append(
            f"max_reply_tokens ({policy.max_reply_tokens}) is larger than daily_token_budget "
            f"({policy.daily_token_budget}); lower the first or raise the second"
        )
    for tool, seconds in policy.tool_cooldowns.items():
        if seconds < 0:
            problems.append(f"tool_cooldowns[{tool}] is negative ({seconds:g}); use 0 or more seconds")
    tools_blocked = policy.tool_rounds_per_reply == 0 or policy.daily_tool_calls == 0
    if tools_blocked and (policy.tool_prerequisites or policy.tool_cooldowns):
        which = "tool_rounds_per_reply" if policy.tool_rounds_per_reply == 0 else "daily_tool_calls"
        problems.append(
            f"{which} is 0, so no tool can run, but tool_cooldowns or tool_prerequisites name tools; "
            f"remove them or allow tool calls"
        )
    for tool, needs in policy.tool_prerequisites.items():
        if tool in needs:
            problems.append(f"tool_prerequisites[{tool}] names {tool} itself, so it could never run")
    cycle = _prerequisite_cycle(policy.tool_prerequisites)
    if cycle:
        problems.append(
            "tool_prerequisites go round in a circle (" + " -> ".join(cycle) + "), so none of them "
            "could ever run; remove one of the links"
        )
    return problems


def _prerequisite_cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle of length two or more in ``tool -> needs``, as a path, or [] when there is none."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(tool: str) -> list[str]:
        if tool in visiting:
            return [*visiting[visiting.index(tool) :], tool]
        if tool in done:
            return []
        visiting.append(tool)
        for need in graph.get(tool, []):
            if need != tool:
                found = visit(need)
                if found:
                    return found
        visiting.pop()
        done.add(tool)
        return []

    for start in graph:
        found = visit(start)
        if found:
            return found
    return []


def parse_policy(data: dict[str, Any] | None) -> Policy:
    """A policy from stored or typed data; raises ``PolicyError`` naming the fields at fault."""
    try:
        return Policy.model_validate(data or {})
    except ValidationError as error:
        parts = []
        for problem in error.errors():
            field = ".".join(str(p) for p in problem["loc"])
            message = str(problem["msg"]).removeprefix("Value error, ")
            parts.append(f"{field}: {message}" if field else message)
        raise PolicyError("This policy cannot be used: " + "; ".join(parts) + ".") from None
