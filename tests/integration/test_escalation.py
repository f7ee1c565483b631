"""Deadlines and escalation on the real broker, across a worker killed with SIGKILL.

The broker runs on its own here (not under `whistle up`), so the worker can be killed and
started again while the broker keeps the topics and the tables' changelogs."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from streams.kafka.broker import free_port

from .workers import Worker, demo_broker, playbooks, wait


@pytest.fixture
def broker(tmp_path):
    with demo_broker(tmp_path) as b:
        yield b


def entries(worker: Worker, incident_id: str) -> list[dict]:
    return worker.http.get(f"/api/v1/incidents/{incident_id}/timeline").json()["entries"]


def police_task(worker: Worker) -> dict | None:
    tasks = worker.http.get("/api/v1/tasks", params={"department": "police"}).json()["tasks"]
    return tasks[0] if tasks else None


def open_tasks_metric(worker: Worker) -> dict[str, str]:
    text = worker.http.get("/metrics").text
    return {d: n for d, n in re.findall(r'^whistle_open_tasks\{department="([^"]+)"\} (\S+)$',
                                        text, re.M) if float(n)}


def open_tasks_listed(worker: Worker) -> dict[str, str]:
    counts: dict[str, int] = {}
    for t in worker.http.get("/api/v1/tasks").json()["tasks"]:
        if t["status"] not in ("completed", "rejected"):
            counts[t["department"]] = counts.get(t["department"], 0) + 1
    return {d: str(float(n)) for d, n in counts.items()}


def test_a_worker_killed_while_a_deadline_is_pending_escalates_exactly_once(broker, tmp_path):
    folder, port = playbooks(tmp_path, "6s"), free_port()
    worker = Worker(broker.url, folder, tmp_path, port)
    alarm = {"alarm_id": "esc-1", "kind": "fire_report", "site_id": "jyh-yinfeng-lab-3",
             "occurred_at": datetime.now(UTC).isoformat(timespec="seconds")}
    assert worker.http.post("/api/v1/alarms", json=alarm).status_code == 202
    task = wait(lambda: police_task(worker), 10, "the police task")
    worker.kill()  # before ack_due: the escalation is pending, and nobody is watching
    due = datetime.fromisoformat(task["ack_due"])
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 1)

    worker = Worker(broker.url, folder, tmp_path, port)
    inc = task["incident_id"]

    def escalated():
        return [e for e in entries(worker, inc) if e["type"] == "escalated"]
    wait(escalated, 20, "the escalation after the restart")
    time.sleep(2)  # several timer ticks: nothing more may come
    assert len(escalated()) == 1
    assert [e["type"] for e in entries(worker, inc)].count("task_overdue") == 1
    notices = worker.http.get("/api/v1/tasks", params={"department": "safety_office"}).json()
    assert [t["notice_of"] for t in notices["tasks"]] == [task["task_id"]]
    assert wait(lambda: worker.http.get(f"/api/v1/incidents/{inc}").json()["level"] == "II",
                10, "the level raised by one")

    # killed again after the escalation: the restarted worker does not fire it a second time
    worker.kill()
    worker = Worker(broker.url, folder, tmp_path, port)
    time.sleep(3)
    assert len(escalated()) == 1
    assert len(worker.http.get("/api/v1/tasks", params={"department": "safety_office"})
               .json()["tasks"]) == 1
    assert police_task(worker)["overdue"] == ["ack"]
    # the open tasks it counts for /metrics are the recovered ones, not a fresh count of zero
    assert open_tasks_metric(worker) == open_tasks_listed(worker)
    assert open_tasks_metric(worker)["safety_office"] == "1.0"
    # and the police answering settles the notice
    answer = worker.http.post(f"/api/v1/tasks/{task['task_id']}/ack", json={"by": "李警官"})
    assert answer.status_code == 200
    wait(lambda: worker.http.get("/api/v1/tasks", params={"department": "safety_office"})
         .json()["tasks"][0]["status"] == "completed", 10, "the notice settled")
    worker.kill()
