"""Chaos: the worker, or the broker, killed with SIGKILL three times while 5,000 alarms pour in.

The broker (the embedded Apache Kafka) and the worker run as processes of their own. One of
them is killed at seeded random moments and started again on the same port and data directory;
the other runs on. The test client behaves like a gateway: a POST that is refused (503) or not
answered at all (the worker is dead) is sent again after a short pause with the same
alarm_ids, until it gets 202.

Afterwards: every accepted alarm on exactly one incident, grouped as the rules say; every task
exactly once through the API; and every record on the department topics identifiable by
`(task_id, revision)`, so a department can drop the copies a crash re-sends (counted, allowed).

    .venv/bin/pytest -s tests/chaos/test_crash.py     # prints the two `chaos crash:` lines
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import httpx
import pytest

from playbooks.departments import DEPARTMENTS, load_departments
from schemas import topics
from streams.kafka.broker import free_port
from tests.integration.kafka import read_topic
from tests.integration.test_storm import grouped_by_survivor, oracle
from tests.integration.workers import Worker, wait

from .conftest import demo_alarms, demo_places, merges_settled, placement

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SEED = 20230516
ALARMS, RETRIES, BATCH = 5000, 0.10, 50
PAUSE = 0.25            # between two POSTs, and before sending a refused one again
KILLS = 3
SETTLE_WITHIN = 120.0


class Gateway(threading.Thread):
    """Posts `batches` in order; each is sent again after `PAUSE` until it gets 202."""

    def __init__(self, url: str, batches: list[list[dict]]) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=15)
        self.batches = batches
        self.accepted: set[str] = set()
        self.done = 0                      # batches accepted so far
        self.answers: Counter = Counter()  # status code, or the exception's name
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            for batch in self.batches:
                self.send(batch)
                self.done += 1
                time.sleep(PAUSE)
        except BaseException as exc:  # the main thread reports it
            self.failure = exc

    def send(self, batch: list[dict]) -> None:
        while True:
            try:
                r = self.http.post("/api/v1/alarms", json=batch)
            except httpx.TransportError as exc:
                self.answers[type(exc).__name__] += 1
            else:
                self.answers[r.status_code] += 1
                if r.status_code == 202:
                    self.accepted.update(r.json()["accepted"])
                    return
                if r.status_code == 503:
                    assert r.headers.get("retry-after"), "a 503 without Retry-After"
                elif r.status_code < 500:  # the batch itself is wrong: retrying cannot help
                    raise AssertionError(f"POST refused {r.status_code}: {r.text[:500]}")
            time.sleep(PAUSE)


def consistent(worker: Worker) -> tuple[list[dict], list[dict]] | None:
    """Incidents and tasks read so that the incidents did not change around the tasks read."""
    try:
        before = worker.http.get("/api/v1/incidents", timeout=30).json()["incidents"]
        tasks = worker.http.get("/api/v1/tasks", timeout=30).json()["tasks"]
        after = worker.http.get("/api/v1/incidents", timeout=30).json()["incidents"]
    except httpx.HTTPError:
        return None
    return (after, tasks) if before == after else None


async def task_records(broker: str) -> list[dict]:
    """Every record on every department's task topic, decoded."""
    records = []
    for department in load_departments(DEPARTMENTS).by_id():
        for record in await read_topic(broker, topics.task_topic(department), settle=0.5):
            records.append(json.loads(record.value))
    return records


@pytest.mark.parametrize("victim", ["worker", "broker"])
async def test_every_alarm_survives_three_kills(broker, tmp_path, victim):
    rng = random.Random(SEED)
    alarms = demo_alarms(rng, ALARMS, "crash", datetime.now(UTC))
    posts = alarms + rng.sample(alarms, int(ALARMS * RETRIES))  # gateways' retries, same ids
    rng.shuffle(posts)
    batches = [posts[i:i + BATCH] for i in range(0, len(posts), BATCH)]
    # the moments: once the gateway has this many batches accepted, and a little later
    kill_after = sorted(rng.sample(range(5, len(batches) - 5), KILLS))
    delays = [rng.uniform(0, PAUSE * 2) for _ in range(KILLS)]

    port = free_port()
    started = time.monotonic()
    worker = Worker(broker.url, None, tmp_path, port)
    gateway = Gateway(worker.url, batches)
    restarts, killed_at = [], []
    try:
        gateway.start()
        for after, delay in zip(kill_after, delays, strict=True):
            wait(lambda after=after: gateway.done >= after or not gateway.is_alive(), 120,
                 f"the gateway to have {after} batches accepted")
            time.sleep(delay)
            killed_at.append(gateway.done)
            if victim == "worker":
                worker.kill()
                worker = Worker(broker.url, None, tmp_path, port)
                restarts.append(worker.ready_after)
            else:  # the same port and data directory; Kafka recovers its log on start
                broker.kill()
                t0 = time.monotonic()
                broker.start()
                restarts.append(time.monotonic() - t0)
        gateway.join(timeout=180)
        assert not gateway.is_alive(), "the gateway did not get all its batches accepted"
        if gateway.failure:
            raise gateway.failure
        sent = time.monotonic() - started
        assert gateway.accepted == {a["alarm_id"] for a in alarms}

        # settled: every accepted alarm attached, merges applied, tasks as the incidents say
        deadline, last = time.monotonic() + SETTLE_WITHIN, None
        while True:
            last = consistent(worker) or last
            if last is not None:
                incidents, tasks = last
                if (set(placement(incidents)) >= gateway.accepted and merges_settled(incidents)
                        and {t["task_id"] for t in tasks}
                        == {t for i in incidents for t in i["task_ids"]}):
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        assert last is not None, "never read a consistent view of incidents and tasks"
        incidents, tasks = last
        records = await task_records(broker.url.removeprefix("kafka://"))
    finally:
        gateway.join(timeout=1)
        worker.kill()

    # every accepted alarm on exactly one incident: none lost, none counted twice
    where = placement(incidents)
    missing = gateway.accepted - set(where)
    assert not missing, (f"{len(missing)} accepted alarms on no incident after "
                         f"{SETTLE_WITHIN:.0f} s, e.g. {sorted(missing)[:5]}")
    twice = {a: n for a, n in where.items() if n > 1}
    assert not twice, f"{len(twice)} alarms on more than one incident, e.g. {list(twice)[:5]}"
    assert set(where) == gateway.accepted
    assert merges_settled(incidents)

    # ...grouped as the rules say, whatever the kills did to the order of processing
    grouped = grouped_by_survivor(incidents)
    assert grouped == oracle(alarms, demo_places())

    # every task exactly once through the API, and just the ones the incidents name
    ids = [t["task_id"] for t in tasks]
    listed_twice = [t for t, n in Counter(ids).items() if n > 1]
    assert not listed_twice, f"tasks listed twice through the API: {listed_twice[:5]}"
    named = [t for i in incidents for t in i["task_ids"]]
    assert len(named) == len(set(named)), "a task named by two incidents"
    assert set(ids) == set(named)
    named_by = {i["incident_id"]: set(i["task_ids"]) for i in incidents}
    for t in tasks:
        assert t["task_id"] in named_by[t["incident_id"]]

    # every record on a department topic carries (task_id, revision); copies are counted
    assert all(isinstance(r.get("task_id"), str) and isinstance(r.get("revision"), int)
               for r in records)
    copies = Counter((r["task_id"], r["revision"]) for r in records)
    duplicates = sum(1 for n in copies.values() if n > 1)  # pairs sent more than once
    extra = len(records) - len(copies)                     # the copies a department drops
    versions: dict[tuple, set[str]] = defaultdict(set)
    for r in records:
        versions[(r["task_id"], r["revision"])].add(json.dumps(r, sort_keys=True))
    differing = [k for k, v in versions.items() if len(v) > 1]
    # a department dropping a (task_id, revision) it has seen must lose nothing: the copies
    # are the same snapshot, and the API's current one is on the topic
    assert not differing, (f"{len(differing)} (task_id, revision) pairs on the topics with "
                           f"different contents, e.g. {differing[:3]}")
    on_topics = {k: json.loads(next(iter(v))) for k, v in versions.items()}
    for t in tasks:  # (the topics leave out fields that are None)
        shown = {k: v for k, v in t.items() if v is not None}
        assert on_topics.get((t["task_id"], t["revision"])) == shown, \
            f"the API's {t['task_id']} r{t['revision']} is not on its topic as the API shows it"

    print(f"\nchaos crash ({victim} killed): {len(alarms)} alarms sent as {len(posts)} with "
          f"gateway retries in {len(batches)} batches (answers {dict(gateway.answers)}), "
          f"{len(gateway.accepted)} accepted (202), {len(where)} processed, "
          f"{len(incidents)} incidents ({len(grouped)} after merges), {len(tasks)} tasks, "
          f"{KILLS} kills (after {', '.join(map(str, killed_at))} of {len(batches)} batches "
          f"accepted; ready again in "
          f"{', '.join(f'{s:.1f}' for s in restarts)} s), "
          f"{duplicates} topic duplicates ((task_id, revision) pairs sent more than once; "
          f"{extra} extra copies among {len(records)} task records), "
          f"{elapsed:.0f} s (sent in {sent:.0f} s)")
