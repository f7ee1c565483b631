"""Closing and containing an incident by hand (结案 / 撤销 / 控制) on the real stack: open tasks
are cancelled and their departments told, answers stay, the reason and the person are on the
timeline and in the report, nothing is left open or overdue; each bad request is refused
naming its field, with nothing half-done."""

from __future__ import annotations

import json
import re
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "streams" / "demo" / "lab-fire.json"


def test_contain_then_close_by_hand(stack):
    alarms = json.loads(DEMO.read_text(encoding="utf-8"))
    assert stack.http.post("/api/v1/alarms", json=alarms).status_code == 202

    def tasks() -> dict[str, dict]:
        return {t["department"]: t for t in stack.http.get("/api/v1/tasks").json()["tasks"]}

    police = stack.wait_for(lambda: tasks().get("police"), 15, "the police task")
    inc = police["incident_id"]
    base = f"/api/v1/incidents/{inc}"
    for action in ("ack", "start", "complete"):
        answer = stack.http.post(f"/api/v1/tasks/{police['task_id']}/{action}",
                                 json={"by": "李警官"})
        assert answer.status_code == 200, answer.text
    open_before = {d for d, t in tasks().items() if t["status"] not in ("completed",)}
    assert open_before, "other departments still have work"

    refused = [
        (stack.http.post("/api/v1/incidents/inc-none/close",
                         json={"reason": "handled", "by": "王值班"}), 404, ["incident_id"]),
        (stack.http.post(f"{base}/close", json={"reason": "gone", "by": "王值班"}), 422,
         ["reason"]),
        (stack.http.post(f"{base}/close", json={"reason": "duplicate", "by": "王值班"}), 422,
         ["of"]),
        (stack.http.post(f"{base}/close", json={"reason": "duplicate", "of": "inc-none",
                                                "by": "王值班"}), 422, ["of"]),
        (stack.http.post(f"{base}/close", json={"reason": "duplicate", "of": inc,
                                                "by": "王值班"}), 422, ["of"]),
        (stack.http.post(f"{base}/close", json={"reason": "handled"}), 422, ["by"]),
    ]
    for answer, status, loc in refused:
        assert answer.status_code == status, answer.text
        assert answer.json()["details"][0]["loc"] == loc, answer.text
    assert stack.http.get(base).json()["status"] == "open", "nothing half-done"

    contained = stack.http.post(f"{base}/contain", json={"by": "王值班", "note": "火势已控制"})
    assert contained.status_code == 200 and contained.json()["status"] == "contained"
    assert stack.http.post(f"{base}/contain", json={"by": "王值班"}).status_code == 409

    closed = stack.http.post(f"{base}/close", json={"reason": "handled", "by": "王值班",
                                                    "note": "明火已扑灭，现场移交物业"})
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["close_reason"]) == ("closed", "handled")
    after = stack.wait_for(lambda: (t := tasks()) and all(
        t[d]["status"] == "cancelled" for d in open_before) and t, 10, "the tasks cancelled")
    assert after["police"]["status"] == "completed", "an answer is never undone"
    assert all(after[d]["note"] == "事件已结案：明火已扑灭，现场移交物业" for d in open_before)

    again = stack.http.post(f"{base}/close", json={"reason": "handled", "by": "王值班"})
    assert again.status_code == 409 and again.json()["details"] == [
        {"loc": ["status"], "msg": "closed"}]

    entries = stack.http.get(f"{base}/timeline").json()["entries"]
    cancelled = [e for e in entries if e["type"] == "task_cancelled"]
    assert {e["department"] for e in cancelled} == open_before
    assert all(e["by"] == "王值班" for e in cancelled)
    [closing] = [e for e in entries if e["type"] == "incident_closed"]
    assert closing["by"] == "王值班" and closing["detail"]["reason"] == "handled"
    assert any(e["type"] == "incident_contained" and e["by"] == "王值班" for e in entries)
    page = stack.http.get(f"{base}/timeline", params={"format": "html"}).text
    assert "撤销任务" in page and "人工结案" in page and "险情控制" in page

    metrics = stack.http.get("/metrics").text
    still_open = [float(v) for v in re.findall(r'^whistle_open_tasks\{[^}]*\} (\S+)$', metrics,
                                               re.M)]
    assert still_open and sum(still_open) == 0, "nothing left open"
