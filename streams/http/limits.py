"""Rate limits: a token bucket per caller (per bearer token, or per address for requests
without a valid one), so one leaked token or one scanner cannot drown the API that a fire's
alarms and a department's answers go through.

    >>> limits = RateLimits(rate=2, burst=2, clock=lambda: 0.0)
    >>> limits.take("police"), limits.take("police"), limits.take("police")
    (0.0, 0.0, 0.5)
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimits"]


class RateLimits:
    """`rate` requests a second on average, `burst` at once, per key. Keys are forgotten
    oldest first past `keys` (a bucket that refills is as good as a new one)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 keys: int = 10_000) -> None:
        self.rate, self.burst, self.clock, self.keys = rate, burst, clock, keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one request from `key`'s bucket: 0.0 if allowed, else the seconds to wait."""
        now = self.clock()
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.keys:
            self._buckets.popitem(last=False)
        return wait
