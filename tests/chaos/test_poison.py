"""Chaos: poison written straight onto every topic the worker reads, on the real stack.

For each input topic: garbage bytes, invalid UTF-8, invalid JSON, JSON nested past any
parser's depth, valid JSON of the wrong shape, a tombstone, a message that breaks the schema
and one that fits it but cannot be processed; all with the key of the good message that
follows, so they share its partition. Each must reach `whistle.alarms.dlq` with its reason
and its bytes untouched (`value_base64`, `source_topic`, `partition`, `offset`), and the good
message after them must take effect, seen through the API, within 1 s of being produced.
`whistle.tasks.<department>` is read by the task feed (the SSE stream) and by the webhook
sender: the feed skips what is not a Task and the sender dead-letters it. The registry is read
whole by every worker: a record it refuses is logged, and the reader must go on.

    .venv/bin/pytest -s tests/chaos/test_poison.py     # prints the `chaos poison:` line
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from schemas import (
    Alarm,
    Escalation,
    IncidentUpdate,
    Site,
    SiteEvent,
    Task,
    TaskUpdate,
    Triaged,
    topics,
)
from schemas.codec import dump
from streams.kafka.broker import free_port
from tests.integration.conftest import Stack
from tests.integration.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WITHIN_MS = 1000.0
DEPARTMENT = "police"  # its task topic has a webhook, so the sender reads it too
RESULTS: dict[str, tuple[int, float]] = {}  # topic -> (poison messages, ms to the good one)


def now() -> datetime:
    return datetime.now(UTC)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Receiver:
    """A department's own system: takes every webhook POST with 204."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tasks(self) -> set[str]:
        return {b["task"]["task_id"] for b in self.bodies if b.get("type") == "task"}


class Stream:
    """The department's SSE stream, read in a thread: when each task event arrived."""

    def __init__(self, url: str) -> None:
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        threading.Thread(target=self._read, args=(url,), daemon=True).start()
        assert self.ready.wait(10), "the department stream never said ready"

    def _read(self, url: str) -> None:
        event = None
        try:
            with self.client.stream("GET", url) as answer:
                for line in answer.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        if event == "ready":
                            self.ready.set()
                    elif line.startswith("data: ") and event == "task":
                        self.seen.setdefault(json.loads(line[6:])["task_id"], time.monotonic())
        except (httpx.HTTPError, RuntimeError):
            pass  # closed at the end of the module


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="module")
def live(tmp_path_factory, receiver):
    tmp = tmp_path_factory.mktemp("poison")
    config = tmp / "whistle.yaml"  # no tokens (open mode); one department takes webhooks
    config.write_text(f"webhooks:\n  {DEPARTMENT}: {{url: '{receiver.url}', "
                      "secret: 'poison-test-webhook-secret', attempts: 2, backoff: 50ms}\n",
                      encoding="utf-8")
    stack = Stack(tmp, {"WHISTLE_STREAM_PING": "1"}, "--config", str(config))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def stream(live):
    s = Stream(f"{live.url}/api/v1/departments/{DEPARTMENT}/stream")
    yield s
    s.client.close()


@dataclass
class World:
    """An open incident at an unregistered site (fallback playbook: two dispatched tasks)."""

    incident: dict
    tasks: list[dict]
    stream: Stream

    @property
    def incident_id(self) -> str:
        return self.incident["incident_id"]


@pytest.fixture(scope="module")
def world(live, stream) -> World:
    site = unique("poison-site")
    answer = live.http.post("/api/v1/alarms", json={
        "alarm_id": unique("poison-seed"), "kind": "smoke", "site_id": site,
        "occurred_at": now().isoformat()})
    assert answer.status_code == 202, answer.text

    def opened():
        found = live.http.get("/api/v1/incidents", params={"site_id": site}).json()["incidents"]
        return found[0] if found and len(found[0]["task_ids"]) >= 2 else None

    incident = live.wait_for(opened, timeout=15, what="the seed incident and its tasks")
    tasks = live.http.get("/api/v1/tasks", params={"incident_id": incident["incident_id"]}
                          ).json()["tasks"]
    assert len(tasks) >= 2 and all(t["status"] == "dispatched" for t in tasks), tasks
    return World(incident, tasks, stream)


# ---- what goes on the topics -------------------------------------------------------------

DEEP = b"[" * 20_000 + b"]" * 20_000  # past json's recursion limit, yet only 40 kB

COMMON: list[tuple[str, bytes | None]] = [
    ("garbage bytes", b"\x00\xff\xfe\x00\x13garbage\x80"),
    ("invalid UTF-8", b'{"alarm_id": "caf\xe9", "kind": "smoke"}'),
    ("invalid JSON", b'{"alarm_id": "cut-off", '),
    ("nested 20,000 deep", DEEP),
    ("JSON array", b"[1, 2, 3]"),
    ("JSON string", b'"a string"'),
    ("JSON null", b"null"),
    ("empty object", b"{}"),
    ("tombstone", None),
]


def broken(model: Any, **fields: Any) -> bytes:
    """A valid `model` (dumped) with some fields replaced (None: removed): breaks the schema."""
    data = json.loads(dump(model))
    for name, value in fields.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


@dataclass
class Case:
    topic: str
    key: str
    good: bytes
    effect: Callable[[httpx.AsyncClient], Awaitable[bool]]  # the good message took effect
    poison: list[tuple[str, bytes | None]] = field(default_factory=list)
    field_named: str = ""   # the schema-violating one's reason names this field


def alarm(site: str, **over: Any) -> Alarm:
    return Alarm.model_validate({"alarm_id": unique("poison-alarm"), "kind": "smoke",
                                 "site_id": site, "occurred_at": now().isoformat(), **over})


def case_alarms(w: World) -> Case:
    site = unique("poison-alarms")
    good = alarm(site)

    async def effect(api):
        found = (await api.get("/api/v1/incidents", params={"site_id": site})).json()
        return any(good.alarm_id in i["alarm_ids"] for i in found["incidents"])

    year_1 = json.dumps({**json.loads(dump(good)), "alarm_id": unique("poison-year-1"),
                         "occurred_at": "0001-01-01T00:00:00+14:00"}).encode()
    return Case(topics.ALARMS, site, dump(good), effect, [
        ("occurred_at a year ahead", broken(good, occurred_at=(now() + timedelta(days=365))
                                            .isoformat())),
        ("unknown field", broken(good, colour="red")),
        ("fits the schema, cannot be triaged (year 1, +14:00)", year_1),
    ], "occurred_at")


def case_triaged(w: World) -> Case:
    incident_id = unique("inc-poison-triaged")
    site = Site.ad_hoc(unique("poison-triaged-site"))
    good = Triaged(alarm=alarm(site.site_id), incident_id=incident_id, action="open",
                   hazard="fire", family="fire", site=site)

    async def effect(api):
        return (await api.get(f"/api/v1/incidents/{incident_id}")).status_code == 200

    return Case(topics.TRIAGED, incident_id, dump(good), effect, [
        ("action close", broken(good, action="close")),
        ("no site", broken(good, site=None)),
    ], "action")


def case_task_updates(w: World) -> Case:
    task = w.tasks[0]
    good = TaskUpdate(update_id=unique("upd"), task_id=task["task_id"],
                      incident_id=w.incident_id, action="ack", by="chaos", at=now())

    async def effect(api):
        found = (await api.get("/api/v1/tasks", params={"incident_id": w.incident_id})).json()
        return any(t["task_id"] == task["task_id"] and t["status"] == "acknowledged"
                   for t in found["tasks"])

    unknown = good.model_copy(update={"update_id": unique("upd"), "task_id": "no-such-task"})
    return Case(topics.TASK_UPDATES, w.incident_id, dump(good), effect, [
        ("action explode", broken(good, action="explode")),
        ("reject without a note", broken(good, action="reject", note="")),
        ("fits the schema, unknown task", dump(unknown)),
    ], "action")


def case_incident_updates(w: World) -> Case:
    good = IncidentUpdate(update_id=unique("upd"), incident_id=w.incident_id,
                          action="set_level", level="II", by="chaos", at=now())

    async def effect(api):
        return (await api.get(f"/api/v1/incidents/{w.incident_id}")).json()["level"] == "II"

    unknown = good.model_copy(update={"update_id": unique("upd"), "incident_id": "inc-none"})
    return Case(topics.INCIDENT_UPDATES, w.incident_id, dump(good), effect, [
        ("level V", broken(good, level="V")),
        ("set_level without a level", broken(good, level=None)),
        ("fits the schema, unknown incident", dump(unknown)),
    ], "level")


def case_site_events(w: World) -> Case:
    site = unique("poison-events")
    good = SiteEvent(event_id=unique("event"), site_id=site, type="incident_closed",
                     incident_id=unique("inc-poison-closed"), family="fire",
                     reason="false_alarm", at=now())

    async def effect(api):
        answer = await api.get(f"/api/v1/sites/{site}")
        return answer.status_code == 200 and sum(answer.json()["false_alarms"].values()) == 1

    year_1 = good.model_copy(update={"event_id": unique("event"), "incident_id": "inc-year-1",
                                     "at": datetime.fromisoformat("0001-01-01T00:00:00+14:00")})
    return Case(topics.SITE_EVENTS, site, dump(good), effect, [
        ("type incident_opened", broken(good, type="incident_opened")),
        ("fits the schema, cannot be counted (year 1, +14:00)", dump(year_1)),
    ], "type")


def case_escalations(w: World) -> Case:
    task = w.tasks[1]
    good = Escalation(escalation_id=unique("esc"), incident_id=w.incident_id,
                      task_id=task["task_id"], cause="ack_overdue", at=now())

    async def effect(api):
        found = (await api.get("/api/v1/tasks", params={"incident_id": w.incident_id})).json()
        return any(good.escalation_id in t["escalations"] for t in found["tasks"])

    unknown = good.model_copy(update={"escalation_id": unique("esc"), "incident_id": "inc-none"})
    return Case(topics.ESCALATIONS, w.incident_id, dump(good), effect, [
        ("cause bored", broken(good, cause="bored")),
        ("n 0", broken(good, n=0)),
        ("fits the schema, unknown incident", dump(unknown)),
    ], "cause")


def case_tasks(w: World) -> Case:
    template = Task.model_validate(w.tasks[0])
    good = template.model_copy(update={"task_id": f"{w.incident_id}.poison-{uuid.uuid4().hex[:6]}",
                                       "department": DEPARTMENT, "updated_at": now()})

    async def effect(api):  # through the API: the department's stream has it
        return good.task_id in w.stream.seen

    return Case(topics.task_topic(DEPARTMENT), w.incident_id, dump(good), effect, [
        ("status lost", broken(good, status="lost")),
        ("department with a capital", broken(good, department="Police")),
    ], "status")


def case_alarms_urgent(w: World) -> Case:
    """The urgent lane's input: a worker's own copies, but a topic anyone could write to."""
    return dataclasses.replace(case_alarms(w), topic=topics.ALARMS_URGENT)


def case_triaged_urgent(w: World) -> Case:
    return dataclasses.replace(case_triaged(w), topic=topics.TRIAGED_URGENT)


CASES = [case_alarms, case_triaged, case_alarms_urgent, case_triaged_urgent, case_task_updates,
         case_incident_updates, case_site_events, case_escalations,
         case_tasks]  # whistle.timeline is written, never read back


# ---- how it is sent and checked -----------------------------------------------------------

async def inject(broker: str, api_url: str, case: Case) -> tuple[list, Any, float]:
    """Produce the poison, then the good message; the ms from producing the good one to its
    effect through the API."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    try:
        key = case.key.encode("utf-8")
        sent = [await producer.send_and_wait(case.topic, value, key=key)
                for _, value in [*COMMON, *case.poison]]
        async with httpx.AsyncClient(base_url=api_url, timeout=5) as api:
            t0 = time.monotonic()
            meta = await producer.send_and_wait(case.topic, case.good, key=key)
            while not await case.effect(api):
                if time.monotonic() - t0 > 10:
                    raise AssertionError(f"{case.topic}: the good message after the poison "
                                         f"took no effect within 10 s")
                await asyncio.sleep(0.005)
            return sent, meta, (time.monotonic() - t0) * 1000
    finally:
        await producer.stop()


async def letters_for(broker: str, topic: str, sent: list, within: float = 8.0) -> dict:
    """The dead letters of the records `sent` to `topic`, by offset (waits for all of them)."""
    wanted = {(m.partition, m.offset) for m in sent}
    deadline = time.monotonic() + within
    while True:
        found = {}
        for record in await read_topic(broker, topics.DLQ, settle=0.3):
            letter = json.loads(record.value)
            where = (letter["partition"], letter["offset"])
            if letter["source_topic"] == topic and where in wanted:
                found[where] = letter
        if len(found) == len(wanted) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("make", CASES, ids=[c.__name__.removeprefix("case_") for c in CASES])
async def test_poison_is_dead_lettered_and_the_next_good_message_is_processed(
        live, world, receiver, make):
    case = make(world)
    poison = [*COMMON, *case.poison]
    sent, good, ms = await inject(live.broker, live.url, case)
    assert {m.partition for m in sent} == {good.partition}, "the key should fix the partition"
    assert ms < WITHIN_MS, f"{case.topic}: the good message took {ms:.0f} ms after the poison"

    letters = await letters_for(live.broker, case.topic, sent)
    missing = [f"{name} (offset {m.offset})" for (name, _), m in zip(poison, sent, strict=True)
               if (m.partition, m.offset) not in letters]
    assert not missing, (f"{case.topic}: not dead-lettered: {', '.join(missing)}; "
                         f"the worker said:\n{said(live, reader_of(case.topic))}")
    for (name, value), m in zip(poison, sent, strict=True):
        letter = letters[(m.partition, m.offset)]
        assert letter["reason"], f"{case.topic} {name}: a dead letter without a reason"
        assert base64.b64decode(letter["value_base64"]) == (value or b""), (
            f"{case.topic} {name}: the dead letter does not hold the original bytes")
        assert letter["key_base64"] == base64.b64encode(case.key.encode()).decode()
        if value is not None and b"\xff" not in value and b"\xe9" not in value:
            assert letter["value_text"] == value.decode("utf-8"), name
    schema_violation = letters[(sent[len(COMMON)].partition, sent[len(COMMON)].offset)]
    assert case.field_named in schema_violation["reason"], (
        f"{case.topic}: the reason {schema_violation['reason']!r} does not name "
        f"{case.field_named!r}")
    if case.topic == topics.task_topic(DEPARTMENT):
        live.wait_for(lambda: good_task_id(case) in receiver.tasks(), timeout=5,
                      what="the good task delivered to the webhook after the poison")
    RESULTS[case.topic] = (len(poison), ms)


def said(live: Stack, about: str, lines: int = 12) -> str:
    """The worker's last log lines about something, each cut short (a refused record may be
    40 kB)."""
    found = [line for line in live.output if about in line][-lines:]
    return "".join(line[:300] + ("...\n" if len(line) > 300 else "") for line in found)


def reader_of(topic: str) -> str:
    """What the worker's log calls the reader of `topic` that dead-letters."""
    return f"webhooks {DEPARTMENT}" if topic == topics.task_topic(DEPARTMENT) else topic


def good_task_id(case: Case) -> str:
    return json.loads(case.good)["task_id"]


def test_the_agents_keep_working_after_all_the_poison(live):
    """A last alarm through the API, after everything above, is triaged and dispatched."""
    site = unique("poison-after")
    t0 = time.monotonic()
    answer = live.http.post("/api/v1/alarms", json={
        "alarm_id": unique("poison-last"), "kind": "smoke", "site_id": site,
        "occurred_at": now().isoformat()})
    assert answer.status_code == 202, answer.text
    live.wait_for(lambda: any(i["task_ids"] for i in live.http.get(
        "/api/v1/incidents", params={"site_id": site}).json()["incidents"]),
        timeout=5, what="the last alarm's incident and tasks")
    last = (time.monotonic() - t0) * 1000
    assert live.http.get("/readyz").json()["ready"], "the worker is no longer ready"
    n = sum(count for count, _ in RESULTS.values())
    worst = max((ms for _, ms in RESULTS.values()), default=0.0)
    failed = len(CASES) - len(RESULTS)  # each failed above, with what it found
    print(f"\nchaos poison: {n} poison messages on {len(RESULTS)} topics, "
          f"{'all dead-lettered' if not failed else f'{failed} topic(s) FAILED above'}, "
          f"next good message in {worst:.0f} ms (max); last alarm dispatched in {last:.0f} ms")


async def test_the_registry_reader_goes_on_after_records_it_refuses(live):
    """Refused records are logged (every worker reads the registry whole); the next good
    record on the same key is applied within 1 s."""
    device_id = unique("poison-device")
    key = f"device:{device_id}"
    good = {"device_id": device_id, "site_id": "jyh-yinfeng-lab-3", "kind": "smoke",
            "heartbeat": "6h"}
    poison = [value for name, value in COMMON if value is not None] + [  # a tombstone removes
        json.dumps({**good, "heartbeat": "30s"}).encode(),               # under a minute
        json.dumps({**good, "colour": "red"}).encode(),
        json.dumps({**good, "heartbeat": "9999999999999d"}).encode(),    # past timedelta
    ]

    async def effect(api):
        answer = await api.get(f"/api/v1/devices/{device_id}")
        return answer.status_code == 200 and answer.json()["device"] is not None

    producer = AIOKafkaProducer(bootstrap_servers=live.broker, acks="all")
    await producer.start()
    try:
        for value in poison:
            await producer.send_and_wait(topics.REGISTRY, value, key=key.encode())
        async with httpx.AsyncClient(base_url=live.url, timeout=5) as api:
            t0 = time.monotonic()
            await producer.send_and_wait(topics.REGISTRY, json.dumps(good).encode(),
                                         key=key.encode())
            while not await effect(api):
                assert time.monotonic() - t0 < 5, (
                    f"the registry reader stopped at a record it could not apply; the worker "
                    f"said:\n{said(live, 'registry')}")
                await asyncio.sleep(0.005)
            ms = (time.monotonic() - t0) * 1000
    finally:
        await producer.stop()
    print(f"\nchaos poison: registry: {len(poison)} refused records, next good record in "
          f"{ms:.0f} ms")
    assert ms < WITHIN_MS
