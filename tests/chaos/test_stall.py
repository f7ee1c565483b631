"""Chaos: the broker frozen (SIGSTOP) for 10 s under a steady stream of alarms.

The real `whistle up`; a gateway thread posts 20 new alarms every quarter second; in the
middle the broker process is stopped for 10 s and then continued. While it is frozen the API
must refuse (503 with Retry-After) rather than accept what it cannot persist, and `/readyz`
must say not ready; afterwards POSTs are accepted again, the refused alarms are sent again
with the same ids, and every alarm that ever got 202 ends up on exactly one incident.

    .venv/bin/pytest -s tests/chaos/test_stall.py     # prints the `chaos stall:` line
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from tests.integration.conftest import Stack, freeze

from .conftest import demo_alarms, merges_settled, placement

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SEED = 20240501
PER_POST, PAUSE = 20, 0.25
BEFORE, FREEZE, AFTER = 5.0, 10.0, 8.0   # seconds of sending around and during the freeze
INGEST_TIMEOUT = 2                       # WHISTLE_INGEST_TIMEOUT: 503 after this long
SETTLE_WITHIN = 90.0


@dataclass
class Post:
    started: float
    ended: float
    answer: int | str                    # status code, or the exception's name
    alarm_ids: list[str]
    retry_after: str | None = None


class Gateway(threading.Thread):
    """Posts the next `PER_POST` alarms every `PAUSE` until stopped; remembers every answer."""

    def __init__(self, url: str, alarms: list[dict]) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=30)
        self.alarms = alarms
        self.posts: list[Post] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        for i in range(0, len(self.alarms), PER_POST):
            if self.stopping.is_set():
                return
            batch = self.alarms[i:i + PER_POST]
            self.posts.append(post(self.http, batch))
            time.sleep(PAUSE)


def post(http: httpx.Client, batch: list[dict]) -> Post:
    started = time.monotonic()
    ids = [a["alarm_id"] for a in batch]
    try:
        r = http.post("/api/v1/alarms", json=batch)
    except httpx.TransportError as exc:
        return Post(started, time.monotonic(), type(exc).__name__, ids)
    return Post(started, time.monotonic(), r.status_code, ids, r.headers.get("retry-after"))


class Readiness(threading.Thread):
    """Asks `/readyz` every 0.2 s until stopped: (when, status)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=5)
        self.answers: list[tuple[float, int | str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                status: int | str = self.http.get("/readyz").status_code
            except httpx.TransportError as exc:
                status = type(exc).__name__
            self.answers.append((time.monotonic(), status))
            time.sleep(0.2)


def triage_results(stack: Stack) -> Counter:
    found: Counter = Counter()
    for m in re.finditer(r'whistle_alarms_total\{kind="[^"]*",result="(\w+)"\} ([\d.e+]+)',
                         stack.http.get("/metrics").text):
        found[m.group(1)] += int(float(m.group(2)))
    return found


def test_a_frozen_broker_refuses_alarms_and_loses_none(tmp_path):
    rng = random.Random(SEED)
    alarms = demo_alarms(rng, 4000, "stall", datetime.now(UTC))
    stack = Stack(tmp_path, {"WHISTLE_INGEST_TIMEOUT": str(INGEST_TIMEOUT)})
    gateway, readiness = Gateway(stack.url, alarms), Readiness(stack.url)
    broker = stack.broker_pid()
    started = time.monotonic()
    try:
        gateway.start()
        readiness.start()
        time.sleep(BEFORE)
        frozen = time.monotonic()
        freeze(broker)
        try:
            time.sleep(FREEZE)
        finally:
            os.kill(broker, signal.SIGCONT)
        thawed = time.monotonic()
        time.sleep(AFTER)
        gateway.stopping.set()
        gateway.join(timeout=60)
        readiness.stopping.set()
        readiness.join(timeout=10)
        assert not gateway.is_alive(), "the gateway's last POST did not come back"

        # the gateway sends every refused batch again, same alarm_ids, until it is taken
        refused = [p for p in gateway.posts if p.answer != 202]
        retries: list[Post] = []
        for p in refused:
            batch = [a for a in alarms if a["alarm_id"] in set(p.alarm_ids)]
            deadline = time.monotonic() + 30
            while True:
                retries.append(post(stack.http, batch))
                if retries[-1].answer == 202:
                    break
                assert time.monotonic() < deadline, f"a retried batch was refused: {retries[-1]}"
                time.sleep(1)
        accepted = {a for p in [*gateway.posts, *retries] if p.answer == 202 for a in p.alarm_ids}
        sent = {a for p in gateway.posts for a in p.alarm_ids}
        assert accepted == sent

        def settled():
            incidents = stack.http.get("/api/v1/incidents", timeout=30).json()["incidents"]
            if set(placement(incidents)) >= accepted and merges_settled(incidents):
                return incidents
            return None
        deadline, incidents = time.monotonic() + SETTLE_WITHIN, None
        while incidents is None and time.monotonic() < deadline:
            incidents = settled()
            time.sleep(0.5)
        incidents = incidents or stack.http.get("/api/v1/incidents").json()["incidents"]
        triaged = triage_results(stack)
        elapsed = time.monotonic() - started
    finally:
        gateway.stopping.set()
        readiness.stopping.set()
        stack.stop()

    posts = gateway.posts
    answers = {p.answer for p in posts}
    assert answers <= {202, 503}, f"answers other than 202 and 503: {answers}"
    assert all(p.retry_after for p in posts if p.answer == 503), "a 503 without Retry-After"

    # while frozen: refused, never accepted
    inside = [p for p in posts if p.started >= frozen and p.ended <= thawed]
    assert inside, "no POST was answered while the broker was frozen"
    assert all(p.answer == 503 for p in inside), \
        f"answers while frozen: {[p.answer for p in inside]}"
    not_ready = [t for t, status in readiness.answers if frozen <= t <= thawed and status == 503]
    assert not_ready, "/readyz never said not ready while the broker was frozen"
    assert all(status == 200 for t, status in readiness.answers if t < frozen)

    # after: accepted again, and ready again
    after = [p for p in posts if p.started >= thawed]
    first_202 = next((p.started - thawed for p in after if p.answer == 202), None)
    assert first_202 is not None, "no POST was accepted after the broker continued"
    assert after[-1].answer == 202 and readiness.answers[-1][1] == 200
    ready_again = next(t - thawed for t, status in readiness.answers
                       if t >= thawed and status == 200)

    # every accepted alarm (the retried ones too) on exactly one incident
    where = placement(incidents)
    lost = accepted - set(where)
    assert not lost, f"{len(lost)} accepted alarms on no incident, e.g. {sorted(lost)[:5]}"
    twice = [a for a, n in where.items() if n > 1]
    assert not twice, f"alarms on more than one incident: {twice[:5]}"

    n202 = sum(1 for p in posts if p.answer == 202)
    # a 503 says "not known to be persisted", not "not persisted": some refused alarms reach
    # the broker once it runs again, and their retries are then dropped as duplicates
    print(f"\nchaos stall: {len(posts)} posts ({len(sent)} alarms) in {thawed - started:.0f} + "
          f"{AFTER:.0f} s, {n202} answered 202, {len(refused)} answered 503 "
          f"({len(inside)} of them wholly while frozen for {FREEZE:.0f} s); /readyz 503 from "
          f"{not_ready[0] - frozen:.1f} s into the freeze, 200 again {ready_again:.1f} s after "
          f"SIGCONT; first 202 {first_202:.1f} s after SIGCONT; "
          f"{sum(len(p.alarm_ids) for p in refused)} refused alarms sent again "
          f"({len(retries)} posts, {triaged['duplicate']} triaged as duplicates); "
          f"{len(accepted)} accepted, {len(accepted & set(where))} processed, "
          f"lost = {len(lost)}; {len(incidents)} incidents; {elapsed:.0f} s")
