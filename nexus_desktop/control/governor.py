"""The governor: what a character may spend, enforced around every model call and tool call.

- A character's policy is its ``character_policy`` row; no row (or an empty one) limits nothing.
- Token budgets are reserved before a model call and settled after it, under one lock, against
  settled usage plus the reservations still open.  LiteLLM's budgets were overspent by concurrent
  requests because its check ran before spend was recorded (#34732, #26672); here a reservation
  counts from the moment it is granted, so 32 replies at once cannot all pass the same check.
- Usage is written only after a successful call; a failed call releases its reservation.
- Daily tool calls work the same way; cooldowns (per character) and prerequisites (per chat)
  read the ``tool_use`` rows a settled tool call writes.

Qt-free and synchronous (short SQLite transactions): callers on an event loop run these methods
in a thread.  Reservations live in this process only: the app and a CLI chat running at the same
moment each see the other's settled usage, not its open reservations.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nexus_desktop.control.policy import Policy, parse_policy
from nexus_desktop.control.tables import BudgetUsage, CharacterPolicy, ToolUse

Clock = Callable[[], datetime]
DEFAULT_TOOL_ROUNDS = 1
"""Tool rounds per reply when the policy does not say: what the app did before policies."""


def local_now() -> datetime:
    return datetime.now().astimezone()


def day_of(moment: datetime) -> str:
    """The local day of ``moment`` (its own offset when it has one), as stored in ``budget_usage``."""
    return moment.date().isoformat()


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their offset; this app stores them in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class BudgetSpentError(Exception):
    """The character's daily token budget cannot pay for this call; ``str()`` says so in words."""


class ToolLimitError(Exception):
    """The character's daily tool calls are used up; ``str()`` says so in words."""


@dataclass(frozen=True)
class TokenGrant:
    """Tokens reserved for one model call: its prompt plus the reply cap it was given."""

    id: int
    character: str
    day: str
    tokens: int
    reply_tokens: int
    """The reply cap granted: the one asked for, or less when the budget's remainder is smaller."""
    cut: bool
    """The budget lowered the reply cap: a reply that runs to it ran out of budget."""


@dataclass(frozen=True)
class ToolGrant:
    id: int
    character: str
    day: str
    tool: str
    chat_id: int | None


def budget_spent_text(character: str) -> str:
    return f"{character}'s daily token budget is spent; it resets at midnight."


def budget_cut_text(character: str) -> str:
    return f"{character}'s daily token budget is spent; the reply was cut short. It resets at midnight."


def _session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


def load_policy(session: Session, character_id: int) -> Policy:
    row = session.get(CharacterPolicy, character_id)
    return parse_policy(row.policy) if row is not None else Policy()


def usage_on(session: Session, character: str, day: str) -> BudgetUsage | None:
    query = select(BudgetUsage).where(BudgetUsage.character == character, BudgetUsage.day == day)
    return session.exec(query).first()


def last_uses(session: Session, character: str, tools: Iterable[str]) -> dict[str, datetime]:
    """When ``character`` last used each of ``tools`` (UTC); tools never used are absent."""
    wanted = list(tools)
    if not wanted:
        return {}
    query = (
        select(ToolUse.tool, func.max(ToolUse.at))
        .where(ToolUse.character == character, col(ToolUse.tool).in_(wanted))
        .group_by(col(ToolUse.tool))
    )
    return {tool: as_utc(at) for tool, at in session.exec(query) if at is not None}


class Governor:
    def __init__(self, engine: Engine, *, clock: Clock = local_now) -> None:
        self.engine = engine
        self.clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._tokens: dict[int, TokenGrant] = {}
        self._tools: dict[int, ToolGrant] = {}

    # Policies -----------------------------------------------------------------------------

    def policy_for(self, character_id: int) -> Policy:
        """The character's policy; raises ``PolicyError`` only for a stored row that no longer parses.

        Read every time (a small read in the reply's first trip to the database): a cache would
        outlive a deleted character whose id SQLite hands to the next one.
        """
        with _session(self.engine) as s:
            return load_policy(s, character_id)

    def set_policy(self, character_id: int, policy: Policy | None) -> None:
        """Store ``policy`` (None or an empty one removes the row: nothing is limited)."""
        with _session(self.engine) as s:
            row = s.get(CharacterPolicy, character_id)
            if policy is None or policy.empty:
                if row is not None:
                    s.delete(row)
            else:
                row = row or CharacterPolicy(character_id=character_id)
                row.policy = policy.model_dump(mode="json", exclude_defaults=True)
                row.updated_at = datetime.now(UTC)
                s.add(row)
            s.commit()

    # Tokens -------------------------------------------------------------------------------

    def reserve_tokens(
        self, character: str, policy: Policy, prompt_tokens: int, reply_tokens: int
    ) -> TokenGrant:
        """Reserve ``prompt_tokens`` plus a reply cap of at most ``reply_tokens``.

        The cap is ``policy.max_reply_tokens`` at most, and shrinks to what the daily budget has
        left; raises ``BudgetSpentError`` when not even one reply token is left after the prompt.
        """
        cap = min(reply_tokens, policy.max_reply_tokens or reply_tokens)
        day = day_of(self.clock())
        with self._lock:
            cut = False
            if policy.daily_token_budget is not None:
                left = policy.daily_token_budget - self._tokens_used(character, day)
                if left - prompt_tokens < 1:
                    raise BudgetSpentError(budget_spent_text(character))
                if left - prompt_tokens < cap:
                    cap, cut = left - prompt_tokens, True
            grant = TokenGrant(next(self._ids), character, day, prompt_tokens + cap, cap, cut)
            self._tokens[grant.id] = grant
            return grant

    def settle_tokens(self, grant: TokenGrant, used: int, *, reply: bool) -> None:
        """The call succeeded and used ``used`` tokens: count them (and the reply) for its day."""
        with self._lock:
            if self._tokens.pop(grant.id, None) is None:
                return  # settled or released already
            self._add_usage(grant.character, grant.day, tokens=used, replies=1 if reply else 0)

    def release(self, grant: TokenGrant | ToolGrant) -> None:
        """The call failed or never ran: its reservation counts for nothing.  Safe to repeat."""
        with self._lock:
            if isinstance(grant, TokenGrant):
                self._tokens.pop(grant.id, None)
            else:
                self._tools.pop(grant.id, None)

    def held_tokens(self, character: str) -> int:
        """Tokens reserved by ``character``'s calls still running (neither settled nor released)."""
        with self._lock:
            return sum(g.tokens for g in self._tokens.values() if g.character == character)

    def _tokens_used(self, character: str, day: str) -> int:
        with _session(self.engine) as s:
            usage = usage_on(s, character, day)
        settled = usage.tokens if usage is not None else 0
        held = sum(g.tokens for g in self._tokens.values() if g.character == character and g.day == day)
        return settled + held

    # Tools --------------------------------------------------------------------------------

    def unavailable_tools(self, character: str, policy: Policy, tools: Iterable[str]) -> dict[str, str]:
        """The tools not offered now, each with the reason in words: on cooldown, or the daily
        tool calls used up.  Prerequisites are not checked here (see ``prerequisite_refusal``)."""
        names = list(tools)
        now = self.clock()
        if policy.daily_tool_calls is not None:
            with self._lock:
                if self._tool_calls_used(character, day_of(now)) >= policy.daily_tool_calls:
                    reason = (
                        f"{character} has made all {policy.daily_tool_calls} of today's tool calls; "
                        "more are allowed after midnight."
                    )
                    return dict.fromkeys(names, reason)
        cooling = {name: policy.tool_cooldowns[name] for name in names if policy.tool_cooldowns.get(name)}
        if not cooling:
            return {}
        with _session(self.engine) as s:
            used = last_uses(s, character, cooling)
        reasons: dict[str, str] = {}
        for name, at in used.items():
            ends = at + timedelta(seconds=cooling[name])
            left = (ends - as_utc(now)).total_seconds()
            if left > 0:
                reasons[name] = f"{name} is cooling down; {character} can use it again in {left:.0f} s."
        return reasons

    def prerequisite_refusal(self, chat_id: int | None, policy: Policy, tool: str) -> str | None:
        """Why ``tool`` may not run yet in this chat (prerequisites not used in it), or None."""
        needs = policy.tool_prerequisites.get(tool)
        if not needs:
            return None
        with _session(self.engine) as s:
            query = select(ToolUse.tool).where(ToolUse.chat_id == chat_id, col(ToolUse.tool).in_(needs))
            done = set(s.exec(query))
        missing = [need for need in needs if need not in done]
        if not missing:
            return None
        return f"{tool} was not run: it needs {' and '.join(missing)} to be used earlier in this chat."

    def reserve_tool_call(self, character: str, policy: Policy, tool: str, chat_id: int | None) -> ToolGrant:
        """Hold one of today's tool calls; raises ``ToolLimitError`` when none is left."""
        day = day_of(self.clock())
        with self._lock:
            limit = policy.daily_tool_calls
            if limit is not None and self._tool_calls_used(character, day) >= limit:
                raise ToolLimitError(
                    f"{tool} was not run: {character} has made all {limit} of today's tool calls; "
                    "more are allowed after midnight."
                )
            grant = ToolGrant(next(self._ids), character, day, tool, chat_id)
            self._tools[grant.id] = grant
            return grant

    def settle_tool_call(self, grant: ToolGrant) -> None:
        """The tool ran successfully: count it and start its cooldown."""
        at = self.clock().astimezone(UTC)
        with self._lock:
            if self._tools.pop(grant.id, None) is None:
                return
            self._add_usage(grant.character, grant.day, tool_calls=1, use=(grant.tool, grant.chat_id, at))

    def _tool_calls_used(self, character: str, day: str) -> int:
        with _session(self.engine) as s:
            usage = usage_on(s, character, day)
        settled = usage.tool_calls if usage is not None else 0
        return settled + sum(1 for g in self._tools.values() if g.character == character and g.day == day)

    # Usage --------------------------------------------------------------------------------

    def _add_usage(
        self,
        character: str,
        day: str,
        *,
        tokens: int = 0,
        tool_calls: int = 0,
        replies: int = 0,
        use: tuple[str, int | None, datetime] | None = None,
    ) -> None:
        """One transaction: the day's usage row (and the tool use), so a kill never leaves half."""
        with _session(self.engine) as s:
            usage = usage_on(s, character, day) or BudgetUsage(character=character, day=day)
            usage.tokens += max(0, tokens)
            usage.tool_calls += tool_calls
            usage.replies += replies
            s.add(usage)
            if use is not None:
                s.add(ToolUse(character=character, chat_id=use[1], tool=use[0], at=use[2]))
            s.commit()


# What the CLI and the Agent budgets dashboard read ------------------------------------------


class UnknownCharacterError(LookupError):
    pass


@dataclass(frozen=True)
class BudgetRow:
    """One character's usage on one local day, against its current limits (None: no limit)."""

    character: str
    day: str
    tokens: int
    tool_calls: int
    replies: int
    token_limit: int | None
    tool_call_limit: int | None


@dataclass(frozen=True)
class CooldownRow:
    character: str
    tool: str
    used_at: datetime
    ends_at: datetime
    """UTC, like ``used_at``."""


def _policies_by_name(session: Session) -> dict[str, Policy]:
    from nexus_desktop.db.tables import Character

    rows = session.exec(select(Character.name, CharacterPolicy.policy).join(CharacterPolicy))
    policies: dict[str, Policy] = {}
    for name, data in rows:
        try:
            policies.setdefault(name, parse_policy(dict(data)))
        except ValueError:
            continue  # a row the editor would refuse now: shown as no limits rather than crash
    return policies


def budget_rows(engine: Engine, days: int = 30, *, now: datetime | None = None) -> list[BudgetRow]:
    """Usage per character per day for the last ``days`` local days (today included), oldest
    first; a character with limits and no usage today gets a row of zeros for today."""
    moment = now or local_now()
    first = (moment.date() - timedelta(days=days - 1)).isoformat()
    with _session(engine) as s:
        policies = _policies_by_name(s)
        usage = list(s.exec(select(BudgetUsage).where(BudgetUsage.day >= first)))
    rows = [
        BudgetRow(
            u.character,
            u.day,
            u.tokens,
            u.tool_calls,
            u.replies,
            policies.get(u.character, Policy()).daily_token_budget,
            policies.get(u.character, Policy()).daily_tool_calls,
        )
        for u in usage
    ]
    today = day_of(moment)
    seen = {row.character for row in rows if row.day == today}
    for name, policy in policies.items():
        limited = policy.daily_token_budget is not None or policy.daily_tool_calls is not None
        if limited and name not in seen:
            rows.append(BudgetRow(name, today, 0, 0, 0, policy.daily_token_budget, policy.daily_tool_calls))
    return sorted(rows, key=lambda row: (row.day, row.character))


def cooldowns_in_force(engine: Engine, now: datetime | None = None) -> list[CooldownRow]:
    """Every tool cooling down at ``now``, soonest end first."""
    moment = as_utc(now or local_now())
    rows: list[CooldownRow] = []
    with _session(engine) as s:
        for name, policy in _policies_by_name(s).items():
            for tool, at in last_uses(s, name, policy.tool_cooldowns).items():
                ends = at + timedelta(seconds=policy.tool_cooldowns[tool])
                if ends > moment:
                    rows.append(CooldownRow(name, tool, at, ends))
    return sorted(rows, key=lambda row: row.ends_at)


def _limit(value: int | None, unit: str) -> str:
    return f"{value:,} {unit}" if value is not None else "no limit"


def describe_policy(engine: Engine, character_name: str, *, now: datetime | None = None) -> str:
    """The character's policy, today's usage against its limits and the cooldowns in force, as
    text (``nexus governor show``).  Raises ``UnknownCharacterError`` for a name nobody has."""
    from nexus_desktop.db.tables import Character

    moment = now or local_now()
    with _session(engine) as s:
        character = s.exec(select(Character).where(Character.name == character_name)).first()
        if character is None:
            lowered = func.lower(Character.name) == character_name.lower()
            character = s.exec(select(Character).where(lowered)).first()
        if character is None or character.id is None:
            raise UnknownCharacterError(
                f"There is no character called {character_name}; `nexus characters` lists them."
            )
        policy = load_policy(s, character.id)
        usage = usage_on(s, character.name, day_of(moment))
    name = character.name
    rounds = policy.tool_rounds_per_reply
    lines = [
        f"{name}: " + ("no limits set" if policy.empty else "policy"),
        f"  max reply tokens:      {_limit(policy.max_reply_tokens, 'tokens')}",
        f"  tool rounds per reply: {rounds if rounds is not None else f'{DEFAULT_TOOL_ROUNDS} (default)'}",
        f"  daily token budget:    {_limit(policy.daily_token_budget, 'tokens')}",
        f"  daily tool calls:      {_limit(policy.daily_tool_calls, 'calls')}",
    ]
    for tool, seconds in sorted(policy.tool_cooldowns.items()):
        lines.append(f"  cooldown:              {tool} {seconds:g} s after each use")
    for tool, needs in sorted(policy.tool_prerequisites.items()):
        lines.append(f"  prerequisite:          {tool} only after {', '.join(needs)} in the same chat")
    tokens, calls, replies = (usage.tokens, usage.tool_calls, usage.replies) if usage else (0, 0, 0)
    budget = f" of {policy.daily_token_budget:,}" if policy.daily_token_budget is not None else ""
    call_limit = f" of {policy.daily_tool_calls:,}" if policy.daily_tool_calls is not None else ""
    lines.append(
        f"Today ({day_of(moment)}): {tokens:,}{budget} tokens, {calls:,}{call_limit} tool calls, "
        f"{replies:,} replies"
    )
    cooling = [row for row in cooldowns_in_force(engine, moment) if row.character == name]
    if not cooling:
        lines.append("No cooldowns in force.")
    for row in cooling:
        left = (row.ends_at - as_utc(moment)).total_seconds()
        until = row.ends_at.astimezone(moment.tzinfo or None).strftime("%H:%M:%S")
        lines.append(f"Cooling down: {row.tool} until {until} ({left:.0f} s)")
    return "\n".join(lines)
