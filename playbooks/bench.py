"""Benchmark of playbook matching: the time to pick the winner for one alarm, as the number of
playbooks grows (`whistle playbooks bench`).

Synthetic sets mix what a city accumulates: generic plans per kind and site type, plans for
one named site, for one grid, and plans narrowed by an attribute or by night hours. Alarms are
drawn at random across kinds, site types, sites, grids and times, so some hit a site plan,
some a generic plan and some only the fallback.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from playbooks.load import LoadedPlaybook, PlaybookSet
from playbooks.match import match
from playbooks.rules import Facts
from schemas import KINDS, SITE_TYPES, Playbook

__all__ = ["run", "synthetic_set"]

_STEP = [{"id": "s", "department": "safety_office", "action": "处置", "ack_within": "1m",
          "complete_within": "1h"}]
_SIGNALS = ("alarm", "supervisory", "trouble", "restore", "test")


def _loaded(data: dict) -> LoadedPlaybook:
    return LoadedPlaybook(Playbook.model_validate(data), f"<bench {data['id']}>", "0" * 12)


def synthetic_set(n: int, sites: int) -> PlaybookSet:
    """`n` playbooks (plus the fallback) that the set's ambiguity check accepts."""
    kinds = [k for k in KINDS if k != "other"]
    types = [t for t in SITE_TYPES if t != "unknown"]
    books = [_loaded({"id": "fallback", "version": 1, "title": "兜底", "level": "IV",
                      "fallback": True, "steps": _STEP})]
    generic = [(k, t) for k in kinds for t in types]
    for i in range(n):
        k, t = kinds[i % len(kinds)], types[(i // len(kinds)) % len(types)]
        pattern = i % 4
        rule: dict[str, Any]
        if pattern == 0 and i // 4 < len(generic):
            gk, gt = generic[i // 4]
            rule = {"kinds": [gk], "signals": ["alarm"], "site_types": [gt]}
        elif pattern in (0, 1):
            rule = {"kinds": [k], "sites": [f"site-{i % sites}"], "attributes": {"plan": i}}
        elif pattern == 2:
            rule = {"kinds": [k], "grids": [f"grid-{i % 97}"], "attributes": {"plan": i}}
        else:
            rule = {"kinds": [k], "site_types": [t], "hours": ["22:00-06:00"],
                    "attributes": {"plan": i}}
        books.append(_loaded({"id": f"pb-{i:05d}", "version": 1, "title": f"预案 {i}",
                              "level": "III", "match": rule, "steps": _STEP}))
    return PlaybookSet.of(books)


def _facts(rng: random.Random, n: int, sites: int) -> Facts:
    at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(7 * 1440))
    return Facts(kind=rng.choice(KINDS), signal=rng.choice(_SIGNALS[:2]),
                 site_type=rng.choice(SITE_TYPES), site_id=f"site-{rng.randrange(sites)}",
                 grid=f"grid-{rng.randrange(97)}", at=at,
                 attributes={"plan": rng.randrange(max(n, 1))} if rng.random() < 0.5 else {})


def run(sizes: list[int], alarms: int = 20_000, seed: int = 7) -> list[dict]:
    """Median, 99th percentile and mean match time per alarm for each set size."""
    rows = []
    for n in sizes:
        sites = max(50, n // 2)
        t0 = time.perf_counter()
        pset = synthetic_set(n, sites)
        load_s = time.perf_counter() - t0
        rng = random.Random(seed)
        facts = [_facts(rng, n, sites) for _ in range(alarms)]
        for f in facts[: min(len(facts), 2000)]:  # warm the candidate cache
            match(pset, f)
        times, fallback = [], 0
        clock = time.perf_counter_ns
        for f in facts:
            start = clock()
            result = match(pset, f)
            times.append(clock() - start)
            fallback += result.winner is pset.fallback
        times.sort()
        rows.append({"playbooks": n, "alarms": alarms, "median_us": times[len(times) // 2] / 1e3,
                     "p99_us": times[int(len(times) * 0.99)] / 1e3,
                     "mean_us": statistics.fmean(times) / 1e3,
                     "fallback_share": fallback / alarms, "load_s": load_s})
    return rows
