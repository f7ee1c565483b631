"""The department stream (SSE) on the real stack: a task arrives live; a client that was away
reconnects with Last-Event-ID and gets exactly what it missed."""

from __future__ import annotations

import json
import queue
import threading
import time
from datetime import UTC, datetime

import httpx

from tests.integration.conftest import Stack


class Listener:
    """Reads one department's stream on a thread, event by event."""

    def __init__(self, stack: Stack, department: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue = queue.Queue()
        self.url = f"{stack.url}/api/v1/departments/{department}/stream"
        self.headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            self._lines()
        except httpx.RemoteProtocolError:
            pass  # the stack stopped under a stream no test reads any more

    def _lines(self) -> None:
        with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            for line in answer.iter_lines():
                if self.stopped.is_set():
                    return
                if not line:
                    if "event" in fields:
                        self.events.put((fields.get("id"), fields["event"],
                                         json.loads(fields["data"]), time.monotonic()))
                    fields = {}
                elif not line.startswith(":") and ": " in line:
                    name, value = line.split(": ", 1)
                    fields[name] = value

    def next(self, event: str, timeout: float = 5.0, where=lambda data: True):
        """The next event of that type (matching `where`), skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if item[1] == event and where(item[2]):
                return item

    def close(self) -> None:
        self.stopped.set()


def alarm(alarm_id: str, site_id: str = "jyh-yinfeng-lab-3") -> dict:
    return {"alarm_id": alarm_id, "kind": "fire_report", "site_id": site_id,
            "occurred_at": datetime.now(UTC).isoformat(timespec="seconds")}


def police(data: dict) -> bool:
    return data["department"] == "police"


def test_a_task_arrives_live_and_a_reconnection_replays_exactly_what_was_missed(stack):
    first = Listener(stack, "police")
    first.next("reset")
    first.next("ready")
    posted = time.monotonic()
    assert stack.http.post("/api/v1/alarms", json=alarm("sse-1")).status_code == 202
    last_id, _, task, arrived = first.next("task", where=police)
    print(f"\nstream: the police task arrived {(arrived - posted) * 1000:.0f} ms after the "
          f"POST began")
    assert arrived - posted < 2.0, f"the task took {arrived - posted:.2f} s"
    assert task["status"] == "dispatched" and task["revision"] == 1
    assert task["site_name"] and "警戒" in task["action"]
    first.close()

    # while away: the task is acknowledged and a second incident dispatches another; a
    # console that stayed open sees both (the stream's log has them: it reads the task
    # topics a little after the tables, letting records gather for up to 50 ms)
    watcher = Listener(stack, "police", last_id)
    answer = stack.http.post(f"/api/v1/tasks/{task['task_id']}/ack", json={"by": "李警官"})
    assert answer.status_code == 200
    hospital = alarm("sse-2", "cq-zheyi-yuhang-hospital")  # another site: another incident
    assert stack.http.post("/api/v1/alarms", json=hospital).status_code == 202
    watcher.next("task", timeout=10, where=lambda t: t["task_id"] == task["task_id"]
                 and t["revision"] == 2)
    watcher.next("task", timeout=10, where=lambda t: t["task_id"] != task["task_id"])
    watcher.close()

    again = Listener(stack, "police", last_id)
    missed = []
    while True:
        event_id, event, data, _ = again.events.get(timeout=5)
        if event == "ready":
            break
        assert event == "task" and event_id is not None
        missed.append((data["task_id"], data["revision"], data["status"]))
    assert (task["task_id"], 2, "acknowledged") in missed
    assert any(t != task["task_id"] and r == 1 for t, r, _ in missed)
    assert len(missed) == len(set(missed)), "nothing is sent twice"
    assert (task["task_id"], 1, "dispatched") not in missed, "nothing it had is sent again"
    again.close()


def test_without_a_cursor_a_client_gets_the_open_tasks_then_ready(stack):
    assert stack.http.post("/api/v1/alarms", json=alarm("sse-3")).status_code == 202
    stack.wait_for(lambda: any(t["incident_id"] for t in stack.http.get(
        "/api/v1/tasks", params={"department": "police"}).json()["tasks"]), 10, "a police task")
    listener = Listener(stack, "police")
    assert listener.next("reset")[2] == {"reason": "snapshot"}
    snapshot = []
    while (item := listener.events.get(timeout=5))[1] != "ready":
        snapshot.append(item[2])
    assert item[0] is not None and item[2] == {"tasks": len(snapshot)}
    assert snapshot and all(t["department"] == "police" for t in snapshot)
    listener.close()


def test_a_bad_cursor_is_named(stack):
    answer = stack.http.get("/api/v1/departments/police/stream",
                            headers={"Last-Event-ID": "not-a-cursor"})
    assert answer.status_code == 400
    assert answer.json()["details"][0]["loc"] == ["Last-Event-ID"]
    assert stack.http.get("/api/v1/departments/nobody/stream").status_code == 404


def test_clients_hanging_up_mid_stream_never_take_the_worker_down(stack):
    """A console closing its tab is normal: the worker must not die of it (it once did:
    SIGPIPE was left at its default in the server)."""
    for _ in range(20):
        with httpx.stream("GET", f"{stack.url}/api/v1/departments/police/stream",
                          timeout=5) as answer:
            assert answer.status_code == 200
            next(answer.iter_bytes())  # something was sent; now hang up
    time.sleep(0.5)
    assert stack.process.poll() is None
    assert stack.http.get("/healthz").status_code == 200
