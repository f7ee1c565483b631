"""`whistle up` keeps what it holds across a restart: the embedded Apache Kafka's log directory
and the worker's tables live under the data directory, so stopping it (SIGTERM) and starting it
again on the same directory brings back the same incident, tasks, timeline and task streams,
and a task answered after the restart lands on the same timeline.

    .venv/bin/pytest -s tests/integration/test_durability.py   # prints the `durability:` line
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from streams.settings import DEMO_SITES

from .conftest import Stack
from .test_stream import Listener, police

pytestmark = pytest.mark.integration

LAB_FIRE = json.loads((DEMO_SITES.parent / "lab-fire.json").read_text(encoding="utf-8"))


def held(stack: Stack, incident_id: str) -> tuple[dict, list[dict], list[dict]]:
    """The incident, its tasks (by id) and its timeline, as the API shows them."""
    incident = stack.http.get(f"/api/v1/incidents/{incident_id}").json()
    tasks = sorted(stack.http.get("/api/v1/tasks", params={"incident_id": incident_id})
                   .json()["tasks"], key=lambda t: t["task_id"])
    timeline = stack.http.get(f"/api/v1/incidents/{incident_id}/timeline").json()
    return incident, tasks, timeline["entries"]


def stream_until_ready(stack: Stack, cursor: str | None) -> tuple[list[dict], str]:
    """The police stream's task events up to `ready`, and ready's cursor."""
    listener = Listener(stack, "police", cursor)
    events = []
    while (item := listener.events.get(timeout=10))[1] != "ready":
        if item[1] == "task":
            events.append(item[2])
    listener.close()
    return events, item[0]


def test_the_lab_fire_survives_a_restart_of_whistle_up(tmp_path: Path):
    data = tmp_path / "data"
    first = Stack(tmp_path, data=data)
    assert f"data {data}" in first.ready_line and "embedded Apache Kafka" in first.ready_line
    assert first.http.post("/api/v1/alarms", json=LAB_FIRE).status_code == 202
    incident_id = first.wait_for(lambda: [i["incident_id"] for i in first.http.get(
        "/api/v1/incidents", params={"site_id": "jyh-yinfeng-lab-3"}).json()["incidents"]
        if len(i["task_ids"]) >= 5], 15, "the lab fire's incident with its tasks")[0]
    task = next(t for t in held(first, incident_id)[1] if t["department"] == "police")
    acked = first.http.post(f"/api/v1/tasks/{task['task_id']}/ack", json={"by": "张警官"})
    assert acked.status_code == 200
    first.wait_for(lambda: any(e["type"] == "task_acknowledged"
                               for e in held(first, incident_id)[2]), 10, "the ack's entry")
    before = held(first, incident_id)
    # a stream's snapshot and cursor that hold the ack (the feed reads the task topics a
    # little after the tables have it: it lets records gather for up to 50 ms)
    deadline = time.monotonic() + 10
    while True:
        seen, cursor = stream_until_ready(first, None)
        if any(t["task_id"] == task["task_id"] and t["status"] == "acknowledged" for t in seen):
            break
        assert time.monotonic() < deadline, f"the ack never reached the police stream: {seen}"
        time.sleep(0.1)
    console = Listener(first, "police")  # a console left open, as there always is one
    console.next("ready", timeout=10)
    took = first.stop(signal.SIGTERM)
    assert first.process.returncode == 0, "".join(first.output[-30:])
    # both stopped of themselves, the worker with a console's stream open
    assert not [line for line in first.output if "was killed" in line], first.output

    second = Stack(tmp_path, data=data)
    try:
        # no demo sites imported again over what the broker holds
        assert not any("registry records" in line for line in second.output), second.output
        after = second.wait_for(lambda: (h := held(second, incident_id))[1] and h, 30,
                                "the incident after the restart")
        assert after == before

        # the stream resumes from the cursor it had: nothing it had is sent again...
        missed, _ = stream_until_ready(second, cursor)
        assert missed == []
        # ...and what happens now comes next, after that cursor
        listener = Listener(second, "police", cursor)
        listener.next("ready", timeout=10)
        started = second.http.post(f"/api/v1/tasks/{task['task_id']}/start",
                                   json={"by": "张警官", "note": "重启之后"})
        assert started.status_code == 200, started.text
        _, _, event, _ = listener.next("task", timeout=10, where=police)
        listener.close()
        revision = next(t["revision"] for t in before[1] if t["task_id"] == task["task_id"])
        assert (event["task_id"], event["status"], event["revision"]) == (
            task["task_id"], "in_progress", revision + 1)
        entries = second.wait_for(lambda: [e for e in held(second, incident_id)[2]
                                           if e["type"] == "task_started"], 10,
                                  "the start on the timeline")
        timeline = held(second, incident_id)[2]
        assert timeline[:len(before[2])] == before[2]
        assert entries[0]["detail"]["note"] == "重启之后"
    finally:
        second.stop()
    print(f"\ndurability: stopped in {took:.1f} s, ready again in {second.ready_after:.1f} s "
          f"with incident {incident_id}, {len(before[1])} tasks and {len(before[2])} timeline "
          f"entries as before; the police stream resumed from {cursor}")
