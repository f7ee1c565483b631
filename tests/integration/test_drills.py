"""Drills (演练) on the real stack: the duty officer's drill and a gateway's CAP Exercise run the
real pipeline, every task and the department stream say 演练, nobody who reported is told,
the period report keeps drills out of its figures, and the drill's report scores each
department against the plan's deadlines."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

from tests.integration.test_stream import Listener
from tests.integration.test_triage import CAP_ALERT

LAB = "jyh-yinfeng-lab-3"  # a demo site (streams/demo/sites.yaml)
LOCAL = timezone(timedelta(hours=8))


def whistle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True,
                          timeout=60)


def tasks_of(stack, incident_id: str) -> list[dict]:
    return [t for t in stack.http.get("/api/v1/tasks").json()["tasks"]
            if t["incident_id"] == incident_id]


def finish(stack, incident_id: str) -> None:
    """Every department acknowledges and completes its tasks, until the incident closes."""
    def closed() -> bool:
        for t in tasks_of(stack, incident_id):
            for action in {"dispatched": ("ack", "complete"),
                           "acknowledged": ("complete",)}.get(t["status"], ()):
                stack.http.post(f"/api/v1/tasks/{t['task_id']}/{action}", json={"by": "演练"})
        return stack.http.get(f"/api/v1/incidents/{incident_id}").json()["status"] == "closed"
    stack.wait_for(closed, what=f"{incident_id} closed as completed")


def test_a_drill_is_marked_everywhere_and_scored_but_never_counted(stack):
    police = Listener(stack, "police")
    try:
        started = whistle("drill", LAB, "--playbook", "laboratory-fire", "--description",
                          "演练：3号实验室通风橱冒烟", "--by", "王值班", "--json",
                          "--url", stack.url)
        assert started.returncode == 0, started.stderr
        drill = json.loads(started.stdout)
        _, _, task, _ = police.next("task", timeout=10,
                                    where=lambda t: t["incident_id"] == drill["incident_id"])
    finally:
        police.close()
    iid = drill["incident_id"]
    assert drill["drill"] is True and drill["playbook"]["id"] == "laboratory-fire"
    assert task["drill"] is True                                  # on the department's stream
    tasks = stack.wait_for(lambda: len(t := tasks_of(stack, iid)) >= 5 and t,
                           what="the drill's five tasks")
    assert all(t["drill"] is True for t in tasks)
    # a real fire at the same site meanwhile is a real incident, never the drill's
    assert stack.http.post("/api/v1/alarms", json={
        "alarm_id": "real:1", "kind": "fire_report", "site_id": LAB,
        "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reporter": {"name": "李老师", "phone": "13800000000"}}).status_code == 202
    real = stack.wait_for(lambda: next((i for i in stack.http.get(
        "/api/v1/incidents", params={"drill": "false"}).json()["incidents"]
        if "real:1" in i["alarm_ids"]), None), what="the real incident")
    assert real["incident_id"] != iid and not real.get("drill")
    assert all(not t.get("drill") for t in tasks_of(stack, real["incident_id"]))
    assert [i["incident_id"] for i in stack.http.get(
        "/api/v1/incidents", params={"drill": "true"}).json()["incidents"]] == [iid]

    # the police answer in time; the power supply station declines; the others are closed
    # out before anything came due (not scored)
    [p] = [t for t in tasks if t["department"] == "police"]
    for action in ("ack", "complete"):
        assert stack.http.post(f"/api/v1/tasks/{p['task_id']}/{action}",
                               json={"by": "张警官"}).status_code == 200
    [power] = [t for t in tasks if t["department"] == "power_supply"]
    assert stack.http.post(f"/api/v1/tasks/{power['task_id']}/reject",
                           json={"by": "赵电工", "note": "演练不停电"}).status_code == 200
    assert stack.http.post(f"/api/v1/incidents/{iid}/close",
                           json={"reason": "handled", "by": "王值班"}).status_code == 200
    html = stack.wait_for(lambda: "事件结案" in (t := stack.http.get(
        f"/api/v1/incidents/{iid}/timeline", params={"format": "html"}).text) and t,
        what="the drill's report after closing")
    assert "【演练】事后倒查报告" in html and 'id="drill-scores"' in html
    assert 'data-department="police" data-score="100"' in html
    assert 'data-department="power_supply" data-score="50"' in html
    assert 'data-department="enforcement" data-score=""' in html
    # a drill with a reporter: closed, nobody is told (a real one would be)
    exercise = CAP_ALERT.format(sent=datetime.now(LOCAL).isoformat(timespec="seconds")) \
        .replace("<status>Actual</status>", "<status>Exercise</status>") \
        .replace("JN119-TEST-0001", "JN119-DRILL-0001")
    assert stack.http.post("/api/v1/alarms", content=exercise.encode(),
                           headers={"Content-Type": "application/cap+xml"}).status_code == 202
    cap = stack.wait_for(lambda: next((i for i in stack.http.get(
        "/api/v1/incidents", params={"drill": "true"}).json()["incidents"]
        if i["incident_id"] != iid), None), what="the CAP exercise's incident")
    assert cap["reporters"] and cap["drill"] is True
    # both done by every department: each closes as completed; only the real one's reporter
    # is told what was done
    for incident in (cap, real):
        finish(stack, incident["incident_id"])
    told = stack.wait_for(lambda: any(e["type"] == "reporter_feedback" for e in stack.http.get(
        f"/api/v1/incidents/{real['incident_id']}/timeline").json()["entries"]),
        what="the real reporter told")
    assert told
    entries = stack.http.get(f"/api/v1/incidents/{cap['incident_id']}/timeline").json()[
        "entries"]
    assert "incident_closed" in [e["type"] for e in entries]
    assert "reporter_feedback" not in [e["type"] for e in entries]
    cap_out = stack.http.get(f"/api/v1/incidents/{cap['incident_id']}",
                             params={"format": "cap"}).text
    assert "<status>Exercise</status>" in cap_out

    # the period report: the real incident counted, the two drills apart
    today = datetime.now(LOCAL).date().isoformat()
    report = whistle("report", "--from", today, "--to", today, "--format", "csv", "--url",
                     stack.url)
    assert report.returncode == 0, report.stderr
    rows = list(csv.reader(io.StringIO(report.stdout.decode("utf-8-sig"))))
    real_ones = [i for i in stack.http.get("/api/v1/incidents").json()["incidents"]
                 if not i.get("drill")]
    assert ["summary", "incidents", str(len(real_ones))] in rows
    assert ["summary", "drills 演练 (not in these figures)", "2"] in rows


def test_a_bad_drill_names_the_field_and_starts_nothing(stack):
    before = len(stack.http.get("/api/v1/incidents", params={"drill": "true"}).json()[
        "incidents"])
    for body, loc in (({"site_id": "nowhere-1"}, ["site_id"]),
                      ({"site_id": LAB, "playbook": "no-such-plan"}, ["playbook"]),
                      ({"site_id": LAB, "level": "V"}, ["level"]),
                      ({"site_id": LAB, "reporter": {"name": "x"}}, ["reporter"])):
        answer = stack.http.post("/api/v1/drills", json={**body, "by": "王值班"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["details"][0]["loc"] == loc
    assert stack.http.get("/api/v1/incidents", params={"drill": "maybe"}).status_code == 422
    assert len(stack.http.get("/api/v1/incidents", params={"drill": "true"}).json()[
        "incidents"]) == before
