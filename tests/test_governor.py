"""The governor on a real SQLite database: policies, budgets reserved and settled, tool cooldowns,
prerequisites and daily tool calls, and what ``nexus governor show`` and the budgets dashboard read."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from nexus_desktop.control.governor import (
    BudgetSpentError,
    Governor,
    ToolLimitError,
    UnknownCharacterError,
    budget_rows,
    cooldowns_in_force,
    describe_policy,
)
from nexus_desktop.control.policy import Policy, PolicyError, parse_policy
from nexus_desktop.control.tables import BudgetUsage
from nexus_desktop.db.store import Store

TZ = timezone(timedelta(hours=2))


class Clock:
    """The test's own time, so a cooldown can end without waiting for it."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 14, 9, 0, tzinfo=TZ)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def governor(store: Store, clock: Clock) -> Governor:
    return Governor(store.engine, clock=clock)


@pytest.fixture
def vega(store: Store) -> int:
    character = store.add_character("Vega", {"name": "Vega"})
    assert character.id is not None
    return character.id


def usage(store: Store, character: str = "Vega") -> tuple[int, int, int]:
    from sqlmodel import Session, select

    with Session(store.engine) as s:
        row = s.exec(select(BudgetUsage).where(BudgetUsage.character == character)).first()
    return (row.tokens, row.tool_calls, row.replies) if row else (0, 0, 0)


# Policies -----------------------------------------------------------------------------------


def test_a_policy_with_contradictory_limits_is_rejected_naming_the_fields_and_a_sound_one_is_kept(
    governor: Governor, vega: int
) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy({"max_reply_tokens": 500, "daily_token_budget": 100})
    assert "max_reply_tokens (500)" in str(refused.value) and "daily_token_budget (100)" in str(refused.value)
    with pytest.raises(PolicyError, match=r"tool_rounds_per_reply is 0.*tool_cooldowns"):
        parse_policy({"tool_rounds_per_reply": 0, "tool_cooldowns": {"dice.roll": 60}})
    with pytest.raises(PolicyError, match=r"notes.recall -> dice.roll -> notes.recall"):
        parse_policy({"tool_prerequisites": {"notes.recall": ["dice.roll"], "dice.roll": ["notes.recall"]}})

    sound = parse_policy(
        {
            "max_reply_tokens": 100,
            "daily_token_budget": 5000,
            "tool_cooldowns": {"dice.roll": 60},
            "tool_prerequisites": {"notes.recall": ["dice.roll"]},
        }
    )
    governor.set_policy(vega, sound)
    assert governor.policy_for(vega) == sound


def test_a_character_without_a_policy_row_is_not_limited(governor: Governor, vega: int) -> None:
    assert governor.policy_for(vega) == Policy()
    grant = governor.reserve_tokens("Vega", Policy(), prompt_tokens=10**6, reply_tokens=400)
    assert (grant.reply_tokens, grant.cut) == (400, False)
    governor.set_policy(vega, Policy(daily_token_budget=10))
    governor.set_policy(vega, Policy())  # clearing every field removes the row
    assert governor.policy_for(vega).empty


# Budgets ------------------------------------------------------------------------------------


def test_concurrent_reservations_against_a_budget_for_ten_grant_exactly_ten(
    governor: Governor, store: Store
) -> None:
    policy = Policy(daily_token_budget=10 * 150)
    granted: list[object] = []
    refused: list[str] = []
    start = threading.Barrier(32)

    def reply() -> None:
        start.wait()
        try:
            grant = governor.reserve_tokens("Vega", policy, prompt_tokens=50, reply_tokens=100)
        except BudgetSpentError as error:
            refused.append(str(error))
            return
        granted.append(grant)

    threads = [threading.Thread(target=reply) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(granted), len(refused)) == (10, 22)
    assert refused[0] == "Vega's daily token budget is spent; it resets at midnight."
    for grant in granted:
        governor.settle_tokens(grant, 150, reply=True)  # type: ignore[arg-type]
    assert usage(store) == (1500, 0, 10)


def test_a_remainder_smaller_than_the_reply_cap_lowers_it_and_nothing_left_refuses(
    governor: Governor, store: Store
) -> None:
    policy = Policy(daily_token_budget=1000, max_reply_tokens=300)
    first = governor.reserve_tokens("Vega", policy, prompt_tokens=100, reply_tokens=400)
    assert (first.reply_tokens, first.tokens, first.cut) == (300, 400, False)  # the policy's cap
    governor.settle_tokens(first, 400, reply=True)
    second = governor.reserve_tokens("Vega", policy, prompt_tokens=500, reply_tokens=400)
    assert (second.reply_tokens, second.cut) == (100, True)
    governor.settle_tokens(second, 600, reply=True)
    with pytest.raises(BudgetSpentError):
        governor.reserve_tokens("Vega", policy, prompt_tokens=1, reply_tokens=400)
    assert usage(store)[0] == 1000


def test_usage_counts_only_after_a_successful_call(governor: Governor, store: Store) -> None:
    policy = Policy(daily_token_budget=500)
    failed = governor.reserve_tokens("Vega", policy, prompt_tokens=100, reply_tokens=300)
    assert governor.held_tokens("Vega") == 400
    governor.release(failed)
    governor.settle_tokens(failed, 400, reply=True)  # too late: released calls never count
    assert usage(store) == (0, 0, 0) and governor.held_tokens("Vega") == 0

    ok = governor.reserve_tokens("Vega", policy, prompt_tokens=100, reply_tokens=300)
    governor.settle_tokens(ok, 250, reply=True)
    governor.settle_tokens(ok, 250, reply=True)  # settling twice counts once
    assert usage(store) == (250, 0, 1)


def test_a_new_local_day_starts_a_fresh_budget(governor: Governor, clock: Clock, store: Store) -> None:
    policy = Policy(daily_token_budget=100)
    clock.now = datetime(2025, 3, 14, 23, 59, tzinfo=TZ)
    governor.settle_tokens(governor.reserve_tokens("Vega", policy, 50, 50), 100, reply=True)
    with pytest.raises(BudgetSpentError):
        governor.reserve_tokens("Vega", policy, 50, 50)
    clock.advance(120)  # 00:01 local, still the 14th in UTC
    assert governor.reserve_tokens("Vega", policy, 50, 50).day == "2025-03-15"


# Tools --------------------------------------------------------------------------------------


def test_a_tool_on_cooldown_is_not_offered_until_the_cooldown_ends(governor: Governor, clock: Clock) -> None:
    policy = Policy(tool_cooldowns={"dice.roll": 60})
    tools = ["dice.roll", "dice.coin"]
    assert governor.unavailable_tools("Vega", policy, tools) == {}
    governor.settle_tool_call(governor.reserve_tool_call("Vega", policy, "dice.roll", chat_id=1))
    clock.advance(15)
    blocked = governor.unavailable_tools("Vega", policy, tools)
    assert blocked == {"dice.roll": "dice.roll is cooling down; Vega can use it again in 45 s."}
    assert governor.unavailable_tools("Aria", policy, tools) == {}  # cooldowns are per character
    clock.advance(46)
    assert governor.unavailable_tools("Vega", policy, tools) == {}


def test_a_failed_tool_call_neither_counts_nor_starts_a_cooldown(governor: Governor, store: Store) -> None:
    policy = Policy(tool_cooldowns={"dice.roll": 60}, daily_tool_calls=5)
    governor.release(governor.reserve_tool_call("Vega", policy, "dice.roll", chat_id=1))
    assert governor.unavailable_tools("Vega", policy, ["dice.roll"]) == {}
    assert usage(store) == (0, 0, 0)


def test_a_tool_is_refused_until_its_prerequisite_was_used_in_the_same_chat(governor: Governor) -> None:
    policy = Policy(tool_prerequisites={"notes.recall": ["dice.roll"]})
    refusal = governor.prerequisite_refusal(7, policy, "notes.recall")
    assert refusal == "notes.recall was not run: it needs dice.roll to be used earlier in this chat."
    governor.settle_tool_call(governor.reserve_tool_call("Vega", policy, "dice.roll", chat_id=8))
    assert governor.prerequisite_refusal(7, policy, "notes.recall") is not None  # another chat
    governor.settle_tool_call(governor.reserve_tool_call("Vega", policy, "dice.roll", chat_id=7))
    assert governor.prerequisite_refusal(7, policy, "notes.recall") is None
    assert governor.prerequisite_refusal(7, policy, "dice.roll") is None  # no prerequisite at all


def test_daily_tool_calls_run_out_and_then_no_tool_is_offered(governor: Governor, store: Store) -> None:
    policy = Policy(daily_tool_calls=2)
    held = governor.reserve_tool_call("Vega", policy, "dice.roll", chat_id=1)
    governor.settle_tool_call(governor.reserve_tool_call("Vega", policy, "dice.coin", chat_id=1))
    with pytest.raises(ToolLimitError, match="all 2 of today's tool calls"):
        governor.reserve_tool_call("Vega", policy, "dice.pick", chat_id=1)  # one settled, one held
    governor.release(held)
    assert governor.unavailable_tools("Vega", policy, ["dice.pick"]) == {}
    governor.settle_tool_call(governor.reserve_tool_call("Vega", policy, "dice.pick", chat_id=1))
    assert set(governor.unavailable_tools("Vega", policy, ["dice.roll", "dice.coin"])) == {
        "dice.roll",
        "dice.coin",
    }
    assert usage(store)[1] == 2


# What the CLI and the dashboard read --------------------------------------------------------


def test_governor_show_describes_the_policy_todays_usage_and_cooldowns(
    governor: Governor, clock: Clock, store: Store, vega: int
) -> None:
    policy = Policy(daily_token_budget=5000, daily_tool_calls=20, tool_cooldowns={"dice.roll": 60})
    governor.set_policy(vega, policy)
    governor.settle_tokens(governor.reserve_tokens("Vega", policy, 100, 100), 180, reply=True)
    governor.settle_tool_call(governor.reserve_tool_call("Vega", policy, "dice.roll", chat_id=1))
    text = describe_policy(store.engine, "vega", now=clock.now + timedelta(seconds=20))
    assert "daily token budget:    5,000 tokens" in text
    assert "cooldown:              dice.roll 60 s after each use" in text
    assert "Today (2025-03-14): 180 of 5,000 tokens, 1 of 20 tool calls, 1 replies" in text
    assert "Cooling down: dice.roll until 09:01:00 (40 s)" in text
    with pytest.raises(UnknownCharacterError, match="no character called Nobody"):
        describe_policy(store.engine, "Nobody")


def test_budget_rows_give_usage_per_day_against_limits_and_cooldowns_their_end(
    governor: Governor, clock: Clock, store: Store, vega: int
) -> None:
    aria = store.add_character("Aria", {"name": "Aria"}).id
    assert aria is not None
    governor.set_policy(vega, Policy(daily_token_budget=1000, tool_cooldowns={"dice.roll": 30}))
    governor.set_policy(aria, Policy(daily_tool_calls=3))
    yesterday = Policy()
    clock.advance(-86400)
    governor.settle_tokens(governor.reserve_tokens("Vega", yesterday, 10, 10), 20, reply=True)
    clock.advance(86400)
    governor.settle_tool_call(governor.reserve_tool_call("Vega", yesterday, "dice.roll", chat_id=1))

    rows = budget_rows(store.engine, days=30, now=clock.now)
    assert [(r.character, r.day, r.tokens, r.tool_calls, r.token_limit, r.tool_call_limit) for r in rows] == [
        ("Vega", "2025-03-13", 20, 0, 1000, None),
        ("Aria", "2025-03-14", 0, 0, None, 3),
        ("Vega", "2025-03-14", 0, 1, 1000, None),
    ]
    assert budget_rows(store.engine, days=1, now=clock.now)[0].day == "2025-03-14"
    cooling = cooldowns_in_force(store.engine, clock.now + timedelta(seconds=10))
    assert [(c.character, c.tool, c.ends_at) for c in cooling] == [
        ("Vega", "dice.roll", clock.now.astimezone(UTC) + timedelta(seconds=30))
    ]
    assert cooldowns_in_force(store.engine, clock.now + timedelta(seconds=31)) == []
