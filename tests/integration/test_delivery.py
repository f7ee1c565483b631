"""Webhooks and reporter feedback on the real stack, against a real local HTTP receiver:
the police's system is down (every POST fails), so the safety office is told; the police
answer on the console instead; the incident closes and the caller gets the feedback."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from schemas import topics
from streams.kafka.broker import free_port
from streams.notify.delivery import verify
from tests.integration.conftest import Stack
from tests.integration.kafka import read_topic
from tests.integration.test_escalation import playbooks

SECRET = "a-webhook-secret-of-32-characters"


class Receiver:
    """An HTTP server on 127.0.0.1: /police answers 503, /feedback records and answers 204."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((self.path, dict(self.headers), body))
                self.send_response(503 if self.path == "/police" else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self, path: str) -> list[tuple[dict, bytes]]:
        return [(h, b) for p, h, b in self.got if p == path]


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("delivery")
    receiver = Receiver()
    hook = (f"{{url: 'http://127.0.0.1:{receiver.port}/PATH', secret: '{SECRET}', "
            f"attempts: 2, backoff: 100ms, timeout: 2s}}")
    config = tmp / "whistle.yaml"
    config.write_text(f"webhooks:\n  police: {hook.replace('PATH', 'police')}\n"
                      f"  feedback: {hook.replace('PATH', 'feedback')}\n", encoding="utf-8")
    stack = Stack(tmp, None, "--config", str(config), "--playbooks",
                  str(playbooks(tmp, "1m")))
    yield stack, receiver
    stack.stop()
    receiver.server.shutdown()


def test_an_unreachable_department_is_escalated_and_the_reporter_hears_back(delivered):
    stack, receiver = delivered
    alarm = {"alarm_id": "hook-1", "kind": "fire_report", "site_id": "jyh-yinfeng-lab-3",
             "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
             "reporter": {"name": "张三", "phone": "13800000000"}}
    assert stack.http.post("/api/v1/alarms", json=alarm).status_code == 202

    def timeline_types():
        incidents = stack.http.get("/api/v1/incidents").json()["incidents"]
        if not incidents:
            return []
        inc = incidents[0]["incident_id"]
        return [e["type"] for e in stack.http.get(
            f"/api/v1/incidents/{inc}/timeline").json()["entries"]]

    stack.wait_for(lambda: "delivery_failed" in timeline_types(), 20, "delivery_failed")
    attempts = receiver.posts("/police")
    assert len(attempts) == 2, "two attempts, as configured"
    for headers, body in attempts:
        assert verify(SECRET, headers["X-Whistle-Timestamp"], body,
                      headers["X-Whistle-Signature"])
        sent = json.loads(body)
        assert sent["type"] == "task" and "设置警戒线" in sent["task"]["action"]
    assert [h["X-Whistle-Attempt"] for h, _ in attempts] == ["1", "2"]
    assert "escalated" in timeline_types()
    [notice] = stack.http.get("/api/v1/tasks",
                              params={"department": "safety_office"}).json()["tasks"]
    assert notice["notice_cause"] == "delivery_failed" and "派出所的系统未收到" in notice["action"]

    # the police learn of it by phone and answer on the console
    task = notice["notice_of"]
    for action in ("ack", "start", "complete"):
        answer = stack.http.post(f"/api/v1/tasks/{task}/{action}", json={"by": "李警官"})
        assert answer.status_code == 200, answer.text
    stack.wait_for(lambda: receiver.posts("/feedback"), 20, "the feedback")
    [(headers, body)] = receiver.posts("/feedback")
    assert verify(SECRET, headers["X-Whistle-Timestamp"], body, headers["X-Whistle-Signature"])
    feedback = json.loads(body)["feedback"]
    assert feedback["reporters"] == [{"name": "张三", "phone": "13800000000"}]
    assert "已处置完毕" in feedback["message"] and "派出所：设置警戒线" in feedback["message"]
    assert "reporter_feedback" in timeline_types()
    # the answer settles the notice too (applied on its own, not before the feedback goes)
    stack.wait_for(lambda: {t["task_id"]: t["status"] for t in stack.http.get(
        "/api/v1/tasks", params={"department": "safety_office"}).json()["tasks"]}.get(
        notice["task_id"]) == "completed", 10, "the notice settled")

    # every revision of the police task was tried twice (the console's answers too); each
    # attempt is on whistle.deliveries
    def attempts_by_delivery():
        found: dict[str, list] = {}
        for r in asyncio.run(read_topic(stack.broker, topics.DELIVERIES)):
            a = json.loads(r.value)
            found.setdefault(a["delivery_id"], []).append((a["attempt"], a["result"]))
        return found
    found = stack.wait_for(lambda: (f := attempts_by_delivery()) and len(f) == 5 and f, 20,
                           "every delivery recorded")
    police = {d: sorted(a) for d, a in found.items() if d.startswith("police:")}
    assert sorted(police) == [f"police:{task}:{n}" for n in (1, 2, 3, 4)]
    assert all(a == [(1, "retry"), (2, "failed")] for a in police.values())
    assert [a for d, a in found.items() if d.startswith("feedback:")] == [[(1, "delivered")]]
