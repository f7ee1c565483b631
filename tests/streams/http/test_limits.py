"""The token bucket, on a clock moved by hand."""

from streams.http.limits import RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_then_the_wait_it_says():
    clock = Clock()
    limits = RateLimits(rate=2, burst=3, clock=clock)
    assert [limits.take("gw") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.take("gw") == 0.5                   # empty: one more in half a second
    clock.now += 0.5
    assert limits.take("gw") == 0.0 and limits.take("gw") == 0.5
    assert limits.take("police") == 0.0, "each key has its own bucket"
    clock.now += 100
    assert [limits.take("gw") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5], "refills to burst"


def test_refused_requests_do_not_count_and_old_keys_are_forgotten():
    clock = Clock()
    limits = RateLimits(rate=1, burst=1, clock=clock, keys=2)
    assert limits.take("a") == 0.0
    assert limits.take("a") == limits.take("a") == 1.0   # refusals take nothing
    limits.take("b"), limits.take("c")
    assert "a" not in limits._buckets and len(limits._buckets) == 2
