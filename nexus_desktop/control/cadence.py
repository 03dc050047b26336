"""When a scheduled task is due: ``every 15m``, ``daily 03:00`` or ``cron */5 * * * *``.

``daily`` and ``cron`` follow the local wall clock, as cron does; ``every`` counts real time from
the previous due time.  Every cadence answers one question, :meth:`Cadence.next_after`, and says
its nominal period, :attr:`Cadence.interval_seconds`, which the scheduler uses to notice that the
clock went back.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property

_EXAMPLES = 'write "every 30s", "every 15m", "every 2h", "every 1d", "daily 03:00" or "cron */5 * * * *"'
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_WORDS = {
    **{word: "s" for word in ("s", "sec", "secs", "second", "seconds")},
    **{word: "m" for word in ("m", "min", "mins", "minute", "minutes")},
    **{word: "h" for word in ("h", "hr", "hrs", "hour", "hours")},
    **{word: "d" for word in ("d", "day", "days")},
}
_EVERY = re.compile(r"every\s+(\d+)?\s*([a-z]+)")
_DAILY = re.compile(r"daily\s+(?:at\s+)?(\d{1,2}):(\d{2})")
# How far ahead a cron cadence is searched: far enough for the rarest date that does come round
# (a weekday falling on a given day of a month that only some years give it: 11 years and more).
_SEARCH_YEARS = 60


class CadenceError(ValueError):
    """A cadence that cannot be read; the message says what to write instead."""


class Cadence(ABC):
    """When a task is due."""

    @property
    @abstractmethod
    def text(self) -> str:
        """The cadence in its one written form; ``parse_cadence(c.text) == c``."""

    @property
    @abstractmethod
    def interval_seconds(self) -> float:
        """The longest gap between two consecutive due times (the period, for a regular cadence)."""

    @abstractmethod
    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after ``moment`` (aware), as an aware datetime."""


@dataclass(frozen=True)
class Every(Cadence):
    """Every N seconds, counted from the previous due time (not anchored to the wall clock)."""

    seconds: int

    @property
    def text(self) -> str:
        for unit in ("d", "h", "m"):
            if self.seconds % _UNITS[unit] == 0:
                return f"every {self.seconds // _UNITS[unit]}{unit}"
        return f"every {self.seconds}s"

    @property
    def interval_seconds(self) -> float:
        return float(self.seconds)

    def next_after(self, moment: datetime) -> datetime:
        _require_aware(moment)
        return moment + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Daily(Cadence):
    """Once a day at HH:MM local time (``tz``; the system's zone when None)."""

    hour: int
    minute: int
    tz: tzinfo | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        return f"daily {self.hour:02d}:{self.minute:02d}"

    @property
    def interval_seconds(self) -> float:
        return 86400.0

    def next_after(self, moment: datetime) -> datetime:
        _require_aware(moment)
        local = _wall(moment, self.tz)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for offset in range(3):  # today, tomorrow, or (across a DST gap) the day after
            candidate = _aware(day + timedelta(days=offset), self.hour, self.minute, self.tz)
            if candidate > moment:
                return candidate
        raise AssertionError("unreachable: a daily time is at most two days away")


@dataclass(frozen=True)
class Cron(Cadence):
    """Five-field cron (minute hour day-of-month month day-of-week), in local time, as Vixie cron:
    when both day fields are restricted (neither starts with ``*``) a day matching either is due."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday ... 6 = Saturday (7 is read as Sunday too)."""
    days_star: bool
    weekdays_star: bool
    source: str = field(compare=False)
    tz: tzinfo | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        return f"cron {self.source}"

    @cached_property
    def interval_seconds(self) -> float:  # type: ignore[override]
        # The longest gap over a sample of due times from a fixed start (600 of them, or 60
        # years' worth): exact for regular expressions, close for the irregular ones.
        moment = datetime(2001, 1, 1, tzinfo=UTC)
        longest = 60.0
        previous = self.next_after(moment)
        for _ in range(600):
            following = self.next_after(previous)
            longest = max(longest, (following - previous).total_seconds())
            if (following - moment).days > _SEARCH_YEARS * 365:
                break
            previous = following
        return longest

    def matches(self, moment: datetime) -> bool:
        """Whether the local minute of ``moment`` is a due time."""
        local = _wall(moment, self.tz)
        return local.minute in self.minutes and local.hour in self.hours and self._day_matches(local)

    def _day_matches(self, local: datetime) -> bool:
        if local.month not in self.months:
            return False
        in_days = local.day in self.days
        in_weekdays = (local.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def next_after(self, moment: datetime) -> datetime:
        _require_aware(moment)
        # Walk the local wall clock field by field, largest first, skipping whole months, days
        # and hours that cannot match.
        local = _wall(moment, self.tz).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = local.year + _SEARCH_YEARS
        while local.year <= limit:
            if local.month not in self.months:
                local = _first_of_next_month(local)
                continue
            if not self._day_matches(local):
                local = local.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if local.hour not in self.hours:
                local = local.replace(minute=0) + timedelta(hours=1)
                continue
            if local.minute not in self.minutes:
                local += timedelta(minutes=1)
                continue
            candidate = _aware(local, local.hour, local.minute, self.tz)
            if candidate > moment:  # a wall time repeated or skipped by DST may not be
                return candidate
            local += timedelta(minutes=1)
        raise CadenceError(
            f'"cron {self.source}" never comes due: no date matches its day and month fields; {_EXAMPLES}.'
        )


def due_times(cadence: Cadence, first: datetime, until: datetime, limit: int) -> tuple[list[datetime], int]:
    """The due times from ``first`` (a due time) through ``until``: the latest ``limit`` of them,
    and how many there were in all (a lower bound for a long stretch of a cron cadence)."""
    if isinstance(cadence, Every):
        count = int((until - first).total_seconds() // cadence.seconds) + 1 if until >= first else 0
        start = max(0, count - limit)
        return [first + timedelta(seconds=cadence.seconds * i) for i in range(start, count)], count
    # A long stretch: look back from ``until`` only as far as the latest ``limit`` due times need.
    # ``interval_seconds`` is sampled, so an irregular cron ("every minute on Sundays") can have
    # longer gaps than it says: widen the look-back until it holds ``limit`` of them.
    span = timedelta(seconds=cadence.interval_seconds * (limit + 1))
    while until - first > span and span < _LONGEST_LOOK_BACK:
        found, seen = _walk(cadence, cadence.next_after(until - span - timedelta(seconds=1)), until, limit)
        if len(found) >= limit:
            return found, seen + 1  # and ``first``, before the stretch looked at
        span *= 2
    return _walk(cadence, first, until, limit)


_LONGEST_LOOK_BACK = timedelta(days=20 * 366)


def _walk(cadence: Cadence, start: datetime, until: datetime, limit: int) -> tuple[list[datetime], int]:
    """The latest ``limit`` due times from ``start`` (a due time) through ``until``, and their count."""
    times: deque[datetime] = deque(maxlen=limit)
    total = 0
    moment = start
    while moment <= until:
        times.append(moment)
        total += 1
        moment = cadence.next_after(moment)
    return list(times), total


def parse_cadence(text: str, *, tz: tzinfo | None = None) -> Cadence:
    """Read a cadence.  ``tz`` is the zone of ``daily`` and ``cron`` (the system's when None)."""
    written = " ".join(str(text).strip().lower().split())
    if written.startswith("every"):
        return _parse_every(written, text)
    if written.startswith("daily"):
        return _parse_daily(written, text, tz)
    if written.startswith("cron"):
        return _parse_cron(written[4:].strip(), text, tz)
    raise CadenceError(f'"{text}" is not a cadence; {_EXAMPLES}.')


def _parse_every(written: str, text: str) -> Every:
    match = _EVERY.fullmatch(written)
    unit = _UNIT_WORDS.get(match.group(2)) if match else None
    if match is None or unit is None:
        raise CadenceError(
            f'"{text}" is not a cadence: after "every" write a number and a unit; {_EXAMPLES}.'
        )
    count = int(match.group(1)) if match.group(1) is not None else 1
    if count < 1:
        raise CadenceError(f'"{text}" never comes due: the interval must be at least 1 second; {_EXAMPLES}.')
    return Every(count * _UNITS[unit])


def _parse_daily(written: str, text: str, tz: tzinfo | None) -> Daily:
    match = _DAILY.fullmatch(written)
    if match is None:
        raise CadenceError(f'"{text}" is not a cadence: write the time as "daily HH:MM", e.g. "daily 03:00".')
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise CadenceError(f'"{text}" has no such time of day: hours run 00-23 and minutes 00-59.')
    return Daily(hour, minute, tz)


_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES = {
    "month": {name: i + 1 for i, name in enumerate(_MONTHS)},
    "day of week": {name: i for i, name in enumerate(_WEEKDAYS)},
}


def _parse_cron(expression: str, text: str, tz: tzinfo | None) -> Cron:
    parts = expression.split()
    if len(parts) != 5:
        raise CadenceError(
            f'"{text}" is not a cron expression: write five fields after "cron" '
            f'(minute hour day-of-month month day-of-week), e.g. "cron */5 * * * *".'
        )
    values = [_parse_field(part, *spec, text) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(day % 7 for day in values[4])
    cron = Cron(
        frozenset(values[0]),
        frozenset(values[1]),
        frozenset(values[2]),
        frozenset(values[3]),
        weekdays,
        days_star=parts[2].startswith("*"),
        weekdays_star=parts[4].startswith("*"),
        source=" ".join(parts),
        tz=tz,
    )
    cron.next_after(datetime(2001, 1, 1, tzinfo=UTC))  # raises CadenceError for "30 February"
    return cron


def _parse_field(part: str, name: str, low: int, high: int, text: str) -> set[int]:
    found: set[int] = set()
    for item in part.split(","):
        found |= _parse_item(item, name, low, high, text)
    return found


def _parse_item(item: str, name: str, low: int, high: int, text: str) -> set[int]:
    bad = CadenceError(
        f'"{text}": the {name} field "{item}" is not valid; use *, */N, a number, a-b, a-b/N or a,b '
        f"with numbers {low}-{high}."
    )
    body, _, step_text = item.partition("/")
    if step_text and not step_text.isdigit():
        raise bad
    step = int(step_text) if step_text else 1
    if step < 1:
        raise bad
    if body == "*":
        first, last = low, high
    elif "-" in body:
        start, _, end = body.partition("-")
        first, last = _number(start, name, bad), _number(end, name, bad)
    else:
        first = _number(body, name, bad)
        last = high if step_text else first  # "5/15" means from 5 to the end, every 15
    for value in (first, last):
        if not low <= value <= high:
            raise CadenceError(f'"{text}": the {name} value {value} is out of range; use {low}-{high}.')
    if first > last:
        raise CadenceError(
            f'"{text}": the {name} range {body} runs backwards; write the smaller number first.'
        )
    return set(range(first, last + 1, step))


def _number(token: str, name: str, bad: CadenceError) -> int:
    if token.isdigit():
        return int(token)
    named = _NAMES.get(name, {}).get(token)
    if named is None:
        raise bad
    return named


# Helpers ------------------------------------------------------------------------------------


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("next_after needs an aware datetime (with a time zone)")


def _wall(moment: datetime, tz: tzinfo | None) -> datetime:
    """``moment`` as a naive local wall-clock time.  ``fold=0``: a time of day DST repeats is
    read as its first occurrence, so it is due once, as in cron."""
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)


def _aware(day: datetime, hour: int, minute: int, tz: tzinfo | None) -> datetime:
    """The instant the local wall clock reads ``day`` at ``hour:minute`` (the first, in a repeated
    hour; in a skipped hour, the instant the clock would have read it without the jump), in UTC:
    an aware time inside a repeated hour compares unequal to every time in another zone."""
    wall = day.replace(hour=hour, minute=minute, second=0, microsecond=0, fold=0)
    if tz is None:
        return wall.astimezone(UTC)  # a naive time's astimezone() reads it as system local time
    return wall.replace(tzinfo=tz).astimezone(UTC)


def _first_of_next_month(local: datetime) -> datetime:
    if local.month == 12:
        return local.replace(year=local.year + 1, month=1, day=1, hour=0, minute=0)
    return local.replace(month=local.month + 1, day=1, hour=0, minute=0)
