"""A per-module rate limit: a token bucket, so bursts are fine and a flood fails fast.

The circuit breaker itself is the lifecycle's failure count: ``ModuleLifecycle.record_failure``
quarantines a module after ``QUARANTINE_AFTER_FAILURES`` failures in a row, and the supervisor
stops a quarantined module's process and refuses its calls until a person releases it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate_per_minute`` calls a minute on average, up to that many at once after a quiet spell."""

    def __init__(self, rate_per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(max(1, rate_per_minute))
        self.refill_per_second = self.capacity / 60.0
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def take(self) -> bool:
        """Use one call's token; False when there is none left (the call must be refused)."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.refill_per_second)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def seconds_until_next(self) -> float:
        return max(0.0, (1.0 - self._tokens) / self.refill_per_second)
