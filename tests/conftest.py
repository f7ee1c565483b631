"""Shared test helpers: a fixed clock and alarm factories."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

CHINA = timezone(timedelta(hours=8))
T0 = datetime(2023, 5, 16, 14, 3, 7, tzinfo=CHINA)


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def alarm_data(**over) -> dict:
    """A valid alarm as a gateway would post it; override any field."""
    data = {"alarm_id": "gw-1:0001", "kind": "smoke", "signal": "alarm",
            "site_id": "jyh-yinfeng-lab-3", "device_id": "smk-1",
            "occurred_at": T0.isoformat()}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}
