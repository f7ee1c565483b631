"""Progress reports (续报) on the real stack: a department adds notes to a task under way; the
status stays, each note is on the timeline and in the report, with who wrote it."""

from __future__ import annotations

import json
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "streams" / "demo" / "lab-fire.json"


def test_notes_on_a_task_under_way(stack):
    alarms = json.loads(DEMO.read_text(encoding="utf-8"))
    assert stack.http.post("/api/v1/alarms", json=alarms).status_code == 202

    def task_of(department):
        tasks = stack.http.get("/api/v1/tasks", params={"department": department}).json()
        return tasks["tasks"][0] if tasks["tasks"] else None

    police = stack.wait_for(lambda: task_of("police"), 15, "the police task")
    url = f"/api/v1/tasks/{police['task_id']}"

    early = stack.http.post(f"{url}/progress", json={"by": "李警官", "note": "在路上"})
    assert early.status_code == 409, "a task not yet acknowledged has nothing under way"
    assert early.json()["details"] == [{"loc": ["status"], "msg": "dispatched"}]

    assert stack.http.post(f"{url}/ack", json={"by": "李警官"}).status_code == 200
    assert stack.http.post(f"{url}/start", json={"by": "李警官"}).status_code == 200
    empty = stack.http.post(f"{url}/progress", json={"by": "李警官", "note": " "})
    assert empty.status_code == 422 and empty.json()["details"][0]["loc"][-1] == "note"

    before = task_of("police")
    noted = stack.http.post(f"{url}/progress", json={"by": "李警官",
                                                     "note": "警戒线已拉好，疏散 40 人"})
    assert noted.status_code == 200, noted.text
    after = noted.json()
    assert after["status"] == "in_progress" and after["revision"] == before["revision"] + 1
    assert after["note"] == "警戒线已拉好，疏散 40 人" and after["by"] == "李警官"

    timeline = f"/api/v1/incidents/{police['incident_id']}/timeline"
    entry = stack.wait_for(lambda: next((e for e in stack.http.get(timeline).json()["entries"]
                                         if e["type"] == "task_progress"), None), 10,
                           "the progress entry")
    assert entry["by"] == "李警官" and entry["detail"]["note"] == "警戒线已拉好，疏散 40 人"
    assert entry["detail"]["status"] == "in_progress"
    md = stack.http.get(timeline, params={"format": "md"}).text
    assert "续报" in md and "警戒线已拉好，疏散 40 人" in md

    assert stack.http.post(f"{url}/complete", json={"by": "李警官"}).status_code == 200
    late = stack.http.post(f"{url}/progress", json={"by": "李警官", "note": "补充"})
    assert late.status_code == 409
