"""Fixtures for the deployment tests: where deploy/ is, and one live `whistle up` that has done a
little of everything (an incident from alarm to closing, heartbeats, a webhook, a stream, a
refused alarm, a dead letter, a playbook reload), so that what deploy/ names can be compared with
what a real worker exports and declares, and message sizes measured rather than guessed.

Nothing here needs Docker or a cluster; a stack that cannot start fails the test, never skips."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from streams.kafka.broker import free_port
from tests.integration.conftest import Stack
from tests.integration.kafka import produce

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HEARTBEATS = 200


def load_all(path: Path) -> list[dict]:
    """Every YAML document of a file (Kubernetes manifests hold several)."""
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


Records = dict[int, list[tuple[bytes | None, int]]]  # partition -> (key, size) in order


async def topic_sizes(broker: str, still: float = 0.0) -> dict[str, Records]:
    """For every topic on the broker, per partition, `(key, size)` of every record in order,
    the size being key plus value bytes. With `still`, first waits until no topic's end offset
    has moved for `still` s (a worker may still be writing), then reads up to those ends."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        ends: dict = {}
        quiet_since = time.monotonic()
        while True:
            await consumer._client.force_metadata_update()  # no subscription: every topic
            names = sorted(consumer._client.cluster.topics())
            tps = [TopicPartition(t, p) for t in names
                   for p in consumer.partitions_for_topic(t) or ()]
            now = await consumer.end_offsets(tps)
            if now != ends:
                ends, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= still:
                break
            await asyncio.sleep(0.2)
        found: dict[str, Records] = {t: {} for t in names}
        for tp in tps:
            found[tp.topic][tp.partition] = []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=5000)
            assert batch, f"nothing read from {sorted(left)[:3]} below their end offsets"
            for tp, records in batch.items():
                found[tp.topic][tp.partition] += [(r.key, len(r.key or b"") + len(r.value or b""))
                                                  for r in records if r.offset < ends[tp]]
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        return found
    finally:
        await consumer.stop()


def _added(before: dict[str, Records], after: dict[str, Records], topic: str) -> list:
    old = before.get(topic, {})
    return [r for p, records in after[topic].items() for r in records[len(old.get(p, [])):]]


def delta(before: dict[str, Records], after: dict[str, Records]) -> dict[str, int]:
    """Bytes added to each topic between two `topic_sizes` readings (topics that grew)."""
    grown = {t: sum(n for _, n in _added(before, after, t)) for t in after}
    return {t: n for t, n in grown.items() if n}


def kept(before: dict[str, Records], after: dict[str, Records]) -> dict[str, int]:
    """What compaction keeps of the records added between two readings: the last record of
    each key written meanwhile (its size now)."""
    out = {}
    for t, partitions in after.items():
        keys = {k for k, _ in _added(before, after, t)}
        if keys:
            last = {k: n for records in partitions.values() for k, n in records}
            out[t] = sum(last[k] for k in keys)
    return out


class _Hook(BaseHTTPRequestHandler):
    """A department's system taking webhooks: 200 for every POST."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Live:
    """What the live stack did and showed."""

    stack: Stack
    metrics: str = ""
    topics: dict[str, Records] = field(default_factory=dict)
    heartbeat_bytes: dict[str, int] = field(default_factory=dict)   # per topic, for HEARTBEATS
    incident_bytes: dict[str, int] = field(default_factory=dict)    # per topic, one incident
    incident_kept: dict[str, int] = field(default_factory=dict)     # after compaction
    incident: dict = field(default_factory=dict)
    tasks: list[dict] = field(default_factory=list)


def _now_lab_fire() -> list[dict]:
    """streams/demo/lab-fire.json moved to the last minutes (the retry stays a retry)."""
    alarms = json.loads((ROOT / "streams" / "demo" / "lab-fire.json").read_text("utf-8"))
    first = min(datetime.fromisoformat(a["occurred_at"]) for a in alarms)
    shift = datetime.now(UTC) - timedelta(minutes=2) - first
    for a in alarms:
        a["occurred_at"] = (datetime.fromisoformat(a["occurred_at"]) + shift).isoformat()
    return alarms


def _answer_everything(stack: Stack, incident_id: str) -> list[dict]:
    """Acknowledge, start and complete every task of the incident, as the departments would,
    until none is open (a completed step may release steps that wait for it)."""
    nxt = {"dispatched": "ack", "acknowledged": "start", "in_progress": "complete"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = stack.http.get("/api/v1/tasks", params={"incident_id": incident_id}).json()["tasks"]
        open_ = [t for t in tasks if t["status"] in nxt]
        if tasks and not open_:
            time.sleep(1.0)  # anything released by the last completion shows up by now
            again = stack.http.get("/api/v1/tasks", params={"incident_id": incident_id})
            if all(t["status"] not in nxt for t in again.json()["tasks"]):
                return again.json()["tasks"]
            continue
        for t in open_:
            url = f"/api/v1/tasks/{t['task_id']}/{nxt[t['status']]}"
            answer = stack.http.post(url, json={"by": "值班员", "note": "部署测试"})
            if answer.status_code == 422 and "outcome" in answer.text:  # the on-site check
                stack.http.post(url, json={"by": "值班员", "note": "部署测试",
                                           "outcome": "confirmed"})
        time.sleep(0.2)
    raise AssertionError(f"the tasks of {incident_id} were not all answered within 60 s")


def _wait_quiet(broker: str, still: float = 4.0) -> dict:
    """Topic sizes once no topic has grown for `still` s (the stages have caught up). Under
    load a stage's write came more than 3 s after the one before (README, eighth stop)."""
    try:
        return asyncio.run(asyncio.wait_for(topic_sizes(broker, still), 60))
    except TimeoutError:
        raise AssertionError(f"the topics did not stay still for {still} s within a "
                             f"minute") from None


# stopped after tests/deploy: a stack left running costs every later test a share of a core
@pytest.fixture(scope="package")
def live(tmp_path_factory) -> Iterator[Live]:
    """One `whistle up` (embedded broker) taken through the scenario in the module docstring."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/whistle"
    env = {"WHISTLE_WEBHOOKS": json.dumps(
        {"police": {"url": hook, "secret": "deploy-test-secret-0123456789"}})}
    stack = Stack(tmp_path_factory.mktemp("live"), env)
    found = Live(stack)
    try:
        broker = stack.broker
        start = _wait_quiet(broker)

        # heartbeats: the `test` signal of HEARTBEATS devices at the demo sites
        now = datetime.now(UTC).isoformat(timespec="seconds")
        beats = [{"alarm_id": f"gw-jyh-01:hb:{i:06d}", "kind": "smoke", "signal": "test",
                  "site_id": "jyh-huangjingu-b7", "device_id": f"smk-b7-{i:04d}",
                  "occurred_at": now} for i in range(HEARTBEATS)]
        assert stack.http.post("/api/v1/alarms", json=beats).status_code == 202
        after_beats = _wait_quiet(broker)
        found.heartbeat_bytes = delta(start, after_beats)

        # one incident from its alarms to its closing, every task answered
        assert stack.http.post("/api/v1/alarms", json=_now_lab_fire()).status_code == 202
        incident = stack.wait_for(lambda: stack.http.get(
            "/api/v1/incidents", params={"site_id": "jyh-yinfeng-lab-3"}).json()["incidents"],
            30, "the lab-fire incident")[0]
        found.tasks = _answer_everything(stack, incident["incident_id"])
        found.incident = stack.http.get(f"/api/v1/incidents/{incident['incident_id']}").json()
        after_incident = _wait_quiet(broker)
        found.incident_bytes = delta(after_beats, after_incident)
        found.incident_kept = kept(after_beats, after_incident)

        # the rest of what the dashboard shows: a refused alarm, a dead letter, a department
        # stream, a playbook reload
        assert stack.http.post("/api/v1/alarms", json={"alarm_id": "x"}).status_code == 422
        asyncio.run(produce(broker, "whistle.alarms", [(b"jyh-kehui-road", b"\xff not json")]))
        with httpx.stream("GET", f"{stack.url}/api/v1/departments/police/stream",
                          timeout=10) as feed:
            for line in feed.iter_lines():
                if line.startswith("event: ready"):
                    found.metrics = stack.http.get("/metrics").text  # the stream is open now
                    break
        assert stack.http.post("/api/v1/playbooks/reload").status_code == 200
        stack.wait_for(lambda: "whistle_dead_letters_total{" in stack.http.get("/metrics").text,
                       30, "the dead letter counted")
        # both scrapes: the stream-clients gauge is 1 only while the stream is open
        found.metrics += "\n" + stack.http.get("/metrics").text
        found.topics = _wait_quiet(broker)
        yield found
    finally:
        stack.stop()
        server.shutdown()


def exported_names(text: str) -> tuple[set[str], set[str]]:
    """The metric names a /metrics page exports: (names with a sample, every name including
    families declared by `# TYPE` without samples yet: a labelled counter appears only at its
    first increment, yet Prometheus would scrape it from then on)."""
    sampled, declared = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            declared |= ({f"{name}_bucket", f"{name}_sum", f"{name}_count"}
                         if kind == "histogram" else {name})
        elif line and not line.startswith("#"):
            sampled.add(line.split("{", 1)[0].split(" ", 1)[0])
    return sampled, sampled | declared


def grouped_by_topic(values: dict[str, int]) -> dict[str, int]:
    """Bytes per kind of topic: department task topics summed as `whistle.tasks.*`."""
    out: dict[str, int] = defaultdict(int)
    for topic, n in values.items():
        out["whistle.tasks.*" if topic.startswith("whistle.tasks.") else topic] += n
    return dict(out)
