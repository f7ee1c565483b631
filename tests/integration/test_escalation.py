"""Deadlines and escalation on the real broker, across a worker killed with SIGKILL.

The broker runs on its own here (not under `whistle up`), so the worker can be killed and
started again while the broker keeps the topics and the tables' changelogs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from schemas.registry import read_registry
from streams import registry
from streams.broker import EmbeddedBroker, free_port
from streams.settings import DEMO_SITES

FALLBACK = """id: fallback
version: 1
title: 兜底预案
level: IV
fallback: true
steps:
  - {id: triage, department: safety_office, action: 研判处置, ack_within: 1m, complete_within: 1h}
"""
QUICK = """id: quick-fire
version: 1
title: 快速督办测试预案
level: III
match: {kinds: [fire_report]}
steps:
  - {id: cordon, department: police, action: 设置警戒线 疏散人员, ack_within: ACK,
     complete_within: 10m}
escalate:
  - {on_overdue: ack, notify: [safety_office], raise_level: true}
"""


def playbooks(tmp: Path, ack: str) -> Path:
    """A fallback and one playbook whose police task must be acknowledged within `ack`."""
    folder = tmp / "playbooks"
    folder.mkdir(exist_ok=True)
    (folder / "fallback.yaml").write_text(FALLBACK, encoding="utf-8")
    (folder / "quick.yaml").write_text(QUICK.replace("ACK", ack), encoding="utf-8")
    return folder


class Worker:
    """One `whistle worker` process against a broker."""

    def __init__(self, broker: str, folder: Path, data: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(data / f"worker-{time.monotonic_ns()}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "WHISTLE_BROKER": broker, "WHISTLE_PORT": str(port),
                 "WHISTLE_PLAYBOOKS": str(folder), "WHISTLE_DATA": str(data),
                 "WHISTLE_ESCALATION_CHECK": "0.5", "WHISTLE_LOG_LEVEL": "warning"})
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the worker did not become ready:\n{Path(self.log.name).read_text()}")
            time.sleep(0.2)
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.log.close()


@pytest.fixture
def broker(tmp_path):
    with EmbeddedBroker(log=tmp_path / "broker.log") as b:
        asyncio.run(registry.publish(b.url, read_registry(DEMO_SITES)))
        yield b


def wait(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return value


def entries(worker: Worker, incident_id: str) -> list[dict]:
    return worker.http.get(f"/api/v1/incidents/{incident_id}/timeline").json()["entries"]


def police_task(worker: Worker) -> dict | None:
    tasks = worker.http.get("/api/v1/tasks", params={"department": "police"}).json()["tasks"]
    return tasks[0] if tasks else None


def test_a_worker_killed_while_a_deadline_is_pending_escalates_exactly_once(broker, tmp_path):
    folder, port = playbooks(tmp_path, "6s"), free_port()
    worker = Worker(broker.url, folder, tmp_path, port)
    alarm = {"alarm_id": "esc-1", "kind": "fire_report", "site_id": "jyh-yinfeng-lab-3",
             "occurred_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    assert worker.http.post("/api/v1/alarms", json=alarm).status_code == 202
    task = wait(lambda: police_task(worker), 10, "the police task")
    worker.kill()  # before ack_due: the escalation is pending, and nobody is watching
    due = datetime.fromisoformat(task["ack_due"])
    time.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()) + 1)

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
    # and the police answering settles the notice
    answer = worker.http.post(f"/api/v1/tasks/{task['task_id']}/ack", json={"by": "李警官"})
    assert answer.status_code == 200
    wait(lambda: worker.http.get("/api/v1/tasks", params={"department": "safety_office"})
         .json()["tasks"][0]["status"] == "completed", 10, "the notice settled")
    worker.kill()
