"""Chaos fixtures and checks: the demo sites' alarms as gateways send them, and the one
question every chaos test asks at the end: is each accepted alarm on exactly one incident?

A broker, worker or stack that cannot start fails the test with its output; nothing skips."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from schemas.registry import read_registry
from streams.settings import DEMO_SITES
from tests.integration.workers import demo_broker

CHINA = timezone(timedelta(hours=8))
EPISODES = [("fire", 0.7), ("gas", 0.15), ("electrical", 0.15)]


@pytest.fixture
def broker(tmp_path):
    """An embedded broker of this test's own, holding the demo sites."""
    with demo_broker(tmp_path) as b:
        yield b


def demo_alarms(rng: random.Random, n: int, prefix: str, now: datetime) -> list[dict]:
    """`n` alarms at the demo sites within the last hour, each with its own alarm_id: per site
    one or two fires (smoke and heat detectors, now and then a 119 report), a gas and an
    electrical episode, each spread over a few minutes around its moment."""
    sites = [s.site_id for s in read_registry(DEMO_SITES).sites]
    moments = {site: {"fire": [now - timedelta(minutes=rng.uniform(5, 55))
                               for _ in range(rng.randint(1, 2))],
                      "gas": [now - timedelta(minutes=rng.uniform(5, 55))],
                      "electrical": [now - timedelta(minutes=rng.uniform(5, 55))]}
               for site in sites}
    hazards, weights = zip(*EPISODES, strict=True)
    alarms = []
    for i in range(n):
        site = rng.choice(sites)
        hazard = rng.choices(hazards, weights)[0]
        at = min(now, rng.choice(moments[site][hazard]) + timedelta(minutes=rng.uniform(-4, 4)))
        alarm = {"alarm_id": f"{prefix}:{site}:{i:05d}", "signal": "alarm", "site_id": site,
                 "occurred_at": at.astimezone(CHINA).isoformat(timespec="seconds")}
        if hazard == "fire" and rng.random() < 0.05:
            alarm.update(kind="fire_report", reporter={"name": "报警人", "phone": "119"})
        elif hazard == "fire":
            kind = rng.choices(["smoke", "heat"], [3, 1])[0]
            alarm.update(kind=kind, device_id=f"{site}-{kind}-{rng.randrange(6)}")
        else:
            alarm.update(kind=hazard, device_id=f"{site}-{hazard}-1")
        alarms.append(alarm)
    return alarms


def demo_places() -> dict[str, str]:
    """What correlates each demo site: its building's key for the units of one building."""
    return {s.site_id: s.triage_key for s in read_registry(DEMO_SITES).sites}


def placement(incidents: list[dict]) -> Counter:
    """How many incidents each alarm_id is attached to."""
    return Counter(a for i in incidents for a in i["alarm_ids"])


def merges_settled(incidents: list[dict]) -> bool:
    """Every merge that was started has been applied on both sides."""
    return (sum(1 for i in incidents if i["merged_into"])
            == sum(len(i["merged"]) for i in incidents))
