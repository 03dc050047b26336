"""Cadences: what a user writes is read the one way it means, the next due time is the first one
strictly after a moment (no due time is skipped over), and a bad cadence says what to write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_desktop.control.cadence import CadenceError, Cron, Daily, Every, due_times, parse_cadence

MOMENTS = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)
BERLIN = ZoneInfo("Europe/Berlin")


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str)
    span = st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}")
    step = st.integers(1, max(1, high - low)).map(lambda n: f"*/{n}")
    span_step = st.tuples(number, number, st.integers(1, 5)).map(
        lambda abn: f"{min(abn[:2])}-{max(abn[:2])}/{abn[2]}"
    )
    listed = st.lists(st.one_of(single, span), min_size=2, max_size=3).map(",".join)
    return st.one_of(st.just("*"), single, span, step, span_step, listed)


CRONS = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 7)).map(
    lambda fields: "cron " + " ".join(fields)
)


@settings(max_examples=200, deadline=None)
@given(CRONS, MOMENTS)
def test_a_cron_due_time_is_strictly_later_matches_and_no_minute_between_matches(
    text: str, moment: datetime
) -> None:
    cron = parse_cadence(text, tz=UTC)
    assert isinstance(cron, Cron)
    due = cron.next_after(moment)
    assert due > moment and cron.matches(due) and due.second == 0
    # Every minute in between (the first two days of it, minute by minute) is not due.
    minute = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = min(due, minute + timedelta(days=2))
    while minute < end:
        assert not cron.matches(minute), f"{text}: {minute} matches before {due}"
        minute += timedelta(minutes=1)
    # And from any point between, the next due time is the same one.
    halfway = moment + (due - moment) / 2
    assert cron.next_after(halfway) == due


@settings(max_examples=200, deadline=None)
@given(CRONS)
def test_a_cron_cadence_reads_back_from_its_own_text(text: str) -> None:
    cron = parse_cadence(text)
    again = parse_cadence(cron.text)
    assert again == cron and again.text == cron.text


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10_000), st.sampled_from(["s", "m", "h", "d"]), MOMENTS)
def test_every_n_units_reads_back_and_is_due_exactly_one_interval_later(
    count: int, unit: str, moment: datetime
) -> None:
    every = parse_cadence(f"every {count}{unit}")
    assert isinstance(every, Every)
    assert parse_cadence(every.text) == every
    seconds = count * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert every.interval_seconds == seconds
    assert every.next_after(moment) - moment == timedelta(seconds=seconds)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 23), st.integers(0, 59), MOMENTS)
def test_daily_is_the_next_local_time_of_day_within_a_day(hour: int, minute: int, moment: datetime) -> None:
    daily = parse_cadence(f"daily {hour}:{minute:02d}", tz=BERLIN)
    assert isinstance(daily, Daily) and parse_cadence(daily.text) == daily
    due = daily.next_after(moment)
    assert moment < due <= moment + timedelta(hours=25)  # 25: the day a DST change is longer
    wall = due.astimezone(BERLIN)
    if (wall.hour, wall.minute) != (hour, minute):
        # Only on the day DST skips that time of day: it runs when the clock would have read it.
        intended = datetime(wall.year, wall.month, wall.day, hour, minute, tzinfo=BERLIN)
        assert intended.astimezone(UTC).astimezone(BERLIN).replace(tzinfo=None) != intended.replace(
            tzinfo=None
        )


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("every 30s", "every 30s"),
        ("every 15m", "every 15m"),
        ("Every 90 minutes", "every 90m"),
        ("every 120 min", "every 2h"),
        ("every hour", "every 1h"),
        ("every 2h", "every 2h"),
        ("every 1d", "every 1d"),
        ("daily 3:00", "daily 03:00"),
        ("daily at 23:59", "daily 23:59"),
        ("cron */5 * * * *", "cron */5 * * * *"),
        ("cron  0 9,17 * * MON-FRI", "cron 0 9,17 * * mon-fri"),
    ],
)
def test_the_cadences_a_user_writes_are_read(written: str, canonical: str) -> None:
    assert parse_cadence(written).text == canonical


def test_cron_day_fields_follow_cron_either_day_matches_when_both_are_given() -> None:
    # 13th of the month OR a Friday; with one of them "*", only the other counts.
    either = parse_cadence("cron 0 0 13 * 5", tz=UTC)
    start = datetime(2024, 3, 1, tzinfo=UTC)  # a Friday
    assert either.next_after(start) == datetime(2024, 3, 8, tzinfo=UTC)  # the next Friday first
    only_13th = parse_cadence("cron 0 0 13 * *", tz=UTC)
    assert only_13th.next_after(start) == datetime(2024, 3, 13, tzinfo=UTC)
    leap = parse_cadence("cron 0 0 29 2 *", tz=UTC)
    assert leap.next_after(datetime(2097, 1, 1, tzinfo=UTC)) == datetime(2104, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("hourly", 'write "every 30s"'),
        ("every 0s", "at least 1 second"),
        ("every 5 fortnights", "a number and a unit"),
        ("daily 25:00", "hours run 00-23"),
        ("daily noon", '"daily HH:MM"'),
        ("cron * * *", "five fields"),
        ("cron 61 * * * *", "minute value 61 is out of range; use 0-59"),
        ("cron 5-1 * * * *", "runs backwards"),
        ("cron */0 * * * *", "*/N"),
        ("cron 0 0 30 2 *", "never comes due"),
        ("cron 0 0 * foo *", "month field"),
    ],
)
def test_a_bad_cadence_is_refused_with_what_to_write(written: str, says: str) -> None:
    with pytest.raises(CadenceError) as refused:
        parse_cadence(written)
    assert says in str(refused.value)
    assert isinstance(refused.value, ValueError)


def test_a_good_cadence_next_to_each_refused_one_is_accepted() -> None:
    # Positive controls for the refusals above: the nearest correct spelling of each is read.
    for written in [
        "every 1h",
        "every 1s",
        "every 5d",
        "daily 23:00",
        "daily 12:00",
        "cron * * * * *",
        "cron 59 * * * *",
        "cron 1-5 * * * *",
        "cron */1 * * * *",
        "cron 0 0 29 2 *",
        "cron 0 0 * jan *",
    ]:
        parse_cadence(written)


def test_next_after_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_cadence("every 1m").next_after(datetime(2024, 1, 1))
    assert parse_cadence("every 1m").next_after(datetime(2024, 1, 1, tzinfo=UTC))


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(CRONS, st.integers(1, 7200).map(lambda n: f"every {n}s")), MOMENTS, st.integers(0, 3 * 86400)
)
def test_the_due_times_missed_over_a_stretch_are_each_due_time_in_it(
    text: str, moment: datetime, gap: int
) -> None:
    cadence = parse_cadence(text, tz=UTC)
    first = cadence.next_after(moment)
    until = first + timedelta(seconds=gap)
    expected = [first]
    while len(expected) <= 50 and (following := cadence.next_after(expected[-1])) <= until:
        expected.append(following)
    found, total = due_times(cadence, first, until, limit=50)
    if len(expected) <= 50:  # all of them
        assert found == expected and total == len(expected)
    else:  # the latest fifty, and more than that in all
        assert len(found) == 50 and found[-1] <= until < cadence.next_after(found[-1]) and total > 50


@pytest.mark.parametrize("written", ["cron 30 2 * * *", "daily 02:30"])
def test_a_time_of_day_that_daylight_saving_repeats_or_skips_is_due_once(written: str) -> None:
    cadence = parse_cadence(written, tz=BERLIN)
    # 27 October 2024: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
    first = cadence.next_after(datetime(2024, 10, 26, 23, 0, tzinfo=UTC))
    assert first == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert cadence.next_after(first) == datetime(2024, 10, 28, 1, 30, tzinfo=UTC)  # not 02:30 CET
    # 31 March 2024: 02:00 CET jumps to 03:00 CEST, so 02:30 never happens; it is due at 03:30.
    skipped = cadence.next_after(datetime(2024, 3, 30, 23, 0, tzinfo=UTC))
    assert skipped == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    assert cadence.next_after(skipped) == datetime(2024, 4, 1, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("days", [1, 2])
def test_the_latest_due_times_of_a_sparse_cron_are_found_after_a_stretch_without_any(days: int) -> None:
    # Every minute on Sundays, looked at from Monday or Tuesday: the latest 50 are Sunday's last.
    cadence = parse_cadence("cron * * * * 0", tz=UTC)
    first = cadence.next_after(datetime(2001, 1, 1, tzinfo=UTC))  # Sunday 7 January, 00:00
    found, total = due_times(cadence, first, first + timedelta(days=days), limit=50)
    sunday_night = datetime(2001, 1, 7, 23, 59, tzinfo=UTC)
    assert found == [sunday_night - timedelta(minutes=49 - i) for i in range(50)]
    assert total > 50
