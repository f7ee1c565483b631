"""An alarm storm on the real embedded broker: 10,000 alarms from 2,000 devices at 200 sites,
20% gateway retries, shuffled, mixed signals.

The expected incidents come from an oracle written independently of triage: per site and
family, alarms grouped by single linkage over occurred_at (a new group wherever the gap
exceeds the 10-minute window), one maintenance incident per faulty device. Shuffled arrival
makes triage open incidents that a later alarm shows to be one fire; those are merged, so the
oracle is compared with the incidents that were not merged into another."""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from schemas import topics

from .conftest import Stack
from .kafka import read_topic

SITES, DEVICES_PER_SITE, ALARMS, RETRIES = 200, 10, 10_000, 0.20
WINDOW = timedelta(minutes=10)
HAZARD = {"smoke": "fire", "heat": "fire", "fire_report": "fire", "gas": "gas",
          "electrical": "electrical"}
TYPES = ["residential", "small_venue", "laboratory", "office", "warehouse", "market", "school",
         "factory"]
DEVICE_KINDS = ["smoke"] * 6 + ["heat"] * 2 + ["gas", "electrical"]


def registry() -> list[dict]:
    return [{"site_id": f"storm-{s:03d}", "name": f"风暴测试站点 {s:03d}",
             "type": TYPES[s % len(TYPES)], "address": f"测试市测试区 风暴路{s}号",
             "grid": f"ST-{s % 20:02d}",
             "devices": [{"device_id": f"storm-{s:03d}-d{d}", "kind": DEVICE_KINDS[d]}
                         for d in range(DEVICES_PER_SITE)]}
            for s in range(SITES)]


def storm(rng: random.Random, base: datetime) -> list[dict]:
    """50 alarms per site: fire around one moment (detectors and 119 calls), a gas and an
    electrical episode, faults and supervisory signals, restores and heartbeats."""
    alarms = []
    for s in range(SITES):
        site = f"storm-{s:03d}"
        dev = [f"{site}-d{d}" for d in range(DEVICES_PER_SITE)]

        def add(kind: str, signal: str, at: datetime, device: str | None,
                site: str = site) -> None:
            alarm = {"alarm_id": f"{site}:{len(alarms)}", "kind": kind, "signal": signal,
                     "site_id": site, "occurred_at": at.isoformat(timespec="seconds")}
            if device:
                alarm["device_id"] = device
            alarms.append(alarm)

        def around(centre: datetime, spread_min: float) -> datetime:
            return centre + timedelta(minutes=rng.uniform(-spread_min, spread_min))

        fire, gas, wire = (base + timedelta(minutes=rng.uniform(10, 100)) for _ in range(3))
        for _ in range(25):
            d = rng.randrange(8)
            add(DEVICE_KINDS[d], "alarm", around(fire, 8), dev[d])
        for _ in range(3):
            add("fire_report", "alarm", around(fire, 8), None)
        for _ in range(4):
            add("gas", "alarm", around(gas, 5), dev[8])
        for _ in range(3):
            add("electrical", "alarm", around(wire, 5), dev[9])
        for signal, n in (("trouble", 5), ("supervisory", 2), ("restore", 3), ("test", 5)):
            for _ in range(n):
                d = rng.randrange(DEVICES_PER_SITE)
                add(DEVICE_KINDS[d], signal, base + timedelta(minutes=rng.uniform(0, 110)), dev[d])
    assert len(alarms) == ALARMS
    return alarms


def oracle(alarms: list[dict], place: Mapping[str, str] | None = None
           ) -> set[frozenset[str]]:
    """The incidents the rules call for, as sets of alarm ids. `place` maps a site to what
    correlates it (its building's key, `Site.triage_key`); by default each site alone."""
    by_family: dict[tuple, list[dict]] = defaultdict(list)
    for a in alarms:
        where = (place or {}).get(a["site_id"], a["site_id"])
        if a["signal"] == "alarm":
            by_family[(where, HAZARD[a["kind"]])].append(a)
        elif a["signal"] in ("trouble", "supervisory"):
            by_family[(where, "maintenance", a["device_id"])].append(a)
    groups: set[frozenset[str]] = set()
    for key, members in by_family.items():
        if key[1] == "maintenance":
            groups.add(frozenset(a["alarm_id"] for a in members))
            continue
        members.sort(key=lambda a: a["occurred_at"])
        current, last = [], None
        for a in members:
            at = datetime.fromisoformat(a["occurred_at"])
            if last is not None and at - last > WINDOW:
                groups.add(frozenset(current))
                current = []
            current.append(a["alarm_id"])
            last = at
        groups.add(frozenset(current))
    return groups


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("storm")
    sites = tmp / "storm-sites.yaml"
    sites.write_text(yaml.safe_dump(registry(), allow_unicode=True), encoding="utf-8")
    s = Stack(tmp, None, "--sites", str(sites))
    yield s
    s.stop()


def triaged_by_result(stack) -> Counter:
    found: Counter = Counter()
    for m in re.finditer(r'whistle_alarms_total\{kind="[^"]*",result="(\w+)"\} ([\d.e+]+)',
                         stack.http.get("/metrics").text):
        found[m.group(1)] += int(float(m.group(2)))
    return found


def grouped_by_survivor(incidents: list[dict], keep: set[str] | None = None) -> set[frozenset]:
    """The alarms (those in `keep`, if given) of each incident that was not merged away,
    with those of the incidents merged into it."""
    final = {i["incident_id"]: i for i in incidents}

    def survivor(incident_id: str) -> str:
        while final[incident_id]["merged_into"]:
            incident_id = final[incident_id]["merged_into"]
        return incident_id

    grouped: dict[str, set[str]] = defaultdict(set)
    for i in incidents:
        grouped[survivor(i["incident_id"])].update(
            a for a in i["alarm_ids"] if keep is None or a in keep)
    return {frozenset(g) for g in grouped.values()}


async def test_storm_every_alarm_on_exactly_one_incident_no_task_twice(stack):
    rng = random.Random(20231516)
    base = datetime.now(timezone(timedelta(hours=8))) - timedelta(hours=2)
    alarms = storm(rng, base)
    posts = alarms + rng.sample(alarms, int(len(alarms) * RETRIES))
    rng.shuffle(posts)

    started = time.monotonic()
    for i in range(0, len(posts), 1000):
        r = stack.http.post("/api/v1/alarms", json=posts[i:i + 1000], timeout=60)
        assert r.status_code == 202, r.text
    posted = time.monotonic() - started

    def settled():
        results = triaged_by_result(stack)
        if sum(results.values()) < len(posts):
            return None
        incidents = stack.http.get("/api/v1/incidents", timeout=60).json()["incidents"]
        attached = sum(len(i["alarm_ids"]) for i in incidents)
        merged_into = sum(1 for i in incidents if i["merged_into"])
        merges = sum(len(i["merged"]) for i in incidents)
        if attached == results["open"] + results["join"] + results["attach"] \
                and merged_into == merges:
            return results, incidents
        return None

    results, incidents = stack.wait_for(settled, timeout=240, what="the storm processed")
    elapsed = time.monotonic() - started
    print(f"\nstorm: {len(posts)} posts ({len(alarms)} alarms) accepted in {posted:.1f} s, "
          f"processed in {elapsed:.1f} s; {len(incidents)} incidents; triage results "
          f"{dict(results)}")

    # every message triaged once; a retry of an alarm that went to an incident stops there
    # (a heartbeat's retry is just recorded again: it changes nothing either way)
    retried = Counter(a["signal"] for a in posts) - Counter(a["signal"] for a in alarms)
    acting_retries = retried["alarm"] + retried["trouble"] + retried["supervisory"]
    assert acting_retries <= results["duplicate"] <= acting_retries + retried["restore"]
    acting_alarms = sum(1 for a in alarms if a["signal"] in ("alarm", "trouble", "supervisory"))
    assert results["open"] + results["join"] == acting_alarms  # each opened or joined once

    # every accepted alarm (but heartbeats and unattached restores) on exactly one incident
    where = Counter(a for i in incidents for a in i["alarm_ids"])
    assert max(where.values()) == 1
    acting = {a["alarm_id"] for a in alarms if a["signal"] in ("alarm", "trouble", "supervisory")}
    assert acting <= set(where)
    assert not {a["alarm_id"] for a in alarms if a["signal"] == "test"} & set(where)

    # the incidents are the ones the rules call for, however the alarms arrived
    expected = oracle(alarms)
    assert grouped_by_survivor(incidents, acting) == expected
    standing = [i for i in incidents if not i["merged_into"]]
    assert len(standing) == len(expected)
    print(f"storm: {len(expected)} incidents as the rules say, {len(incidents) - len(standing)} "
          f"opened by out-of-order arrival and merged")

    # no task dispatched twice: once on the API, once (revision 1) on its department's topic.
    # (督办 notices are left out: deadlines pass while this runs, and notices keep coming)
    tasks = [t for t in stack.http.get("/api/v1/tasks", timeout=60).json()["tasks"]
             if not t.get("notice_of")]
    ids = [t["task_id"] for t in tasks]
    planned = [t for i in incidents for t in i["task_ids"] if ":" not in t.split(".", 1)[1]]
    assert len(ids) == len(set(ids)) and set(ids) >= set(planned)
    dispatched: Counter = Counter()
    departments = {t["department"] for t in tasks}
    for department in departments:
        for record in await read_topic(stack.broker, topics.task_topic(department)):
            value = json.loads(record.value)
            if value["revision"] == 1 and not value.get("notice_of"):
                dispatched[value["task_id"]] += 1
    assert set(dispatched) == set(ids) and max(dispatched.values()) == 1
    print(f"storm: {len(ids)} tasks to {len(departments)} departments, each dispatched once")
