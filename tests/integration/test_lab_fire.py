"""The seed's laboratory fire, end to end on the real embedded broker (issue 2's four steps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import streams
from schemas import topics

from .kafka import read_topic

LAB_FIRE = json.loads((Path(streams.__file__).parent / "demo" / "lab-fire.json").read_text("utf-8"))
LAB = "jyh-yinfeng-lab-3"
FIVE = ("safety_office", "police", "power_supply", "enforcement", "fire_brigade")


def lab_incidents(stack):
    return stack.http.get("/api/v1/incidents", params={"site_id": LAB}).json()["incidents"]


async def test_lab_fire_one_incident_five_departments_and_a_timeline(stack):
    # 2. post the scenario (two detectors, the 119 report, and the gateway's retry)
    r = stack.http.post("/api/v1/alarms", json=LAB_FIRE)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": [a["alarm_id"] for a in LAB_FIRE]}

    # 3. exactly one incident, matched to the laboratory-fire playbook, all alarms joined
    incident = stack.wait_for(
        lambda: next((i for i in lab_incidents(stack) if len(i["alarm_ids"]) == 3), None),
        what="the three distinct alarms on one incident")
    assert len(lab_incidents(stack)) == 1
    assert incident["playbook"]["id"] == "laboratory-fire"
    assert (incident["playbook"]["version"] == "3"
            and len(incident["playbook"]["content_hash"]) == 12)
    # one detector opened it unconfirmed; the second, independent one confirmed it
    assert incident["confirmation"] == "confirmed"
    assert incident["confirmed_by"] == "2 independent detectors: smk-lab3-02, smk-lab3-03"
    assert sorted(incident["alarm_ids"]) == sorted({a["alarm_id"] for a in LAB_FIRE})
    iid = incident["incident_id"]

    tasks = {}
    for department in FIVE:
        listed = stack.http.get("/api/v1/tasks", params={"department": department}).json()["tasks"]
        mine = [t for t in listed if t["incident_id"] == iid]
        assert len(mine) == 1, (department, listed)
        assert mine[0]["status"] == "dispatched" and mine[0]["department"] == department
        tasks[department] = mine[0]
    verify = f"{incident['incident_id']}.verify"  # the on-site check went out first, alone
    assert sorted([verify, *(t["task_id"] for t in tasks.values())]) == sorted(incident["task_ids"])

    for department, task in tasks.items():  # each on its own topic, keyed by incident
        records = await read_topic(stack.broker, topics.task_topic(department))
        mine = [json.loads(r.value) for r in records if r.key == iid.encode()]
        assert {(m["task_id"], m["revision"]) for m in mine} == {(task["task_id"], 1)}, department
        assert mine[0]["action"] == task["action"]  # Chinese action text intact

    # the retry, sent again later, creates nothing new
    again = stack.http.post("/api/v1/alarms", json=LAB_FIRE[3])
    assert again.status_code == 202
    stack.wait_for(lambda: stack.http.get("/metrics").text.count(
        'whistle_alarms_total{kind="smoke",result="duplicate"} 2.0'), what="the retry triaged")
    assert lab_incidents(stack) == [incident]

    # 4. the police acknowledge, start and complete their task
    police = tasks["police"]["task_id"]
    for action, status in (("ack", "acknowledged"), ("start", "in_progress"),
                           ("complete", "completed")):
        r = stack.http.post(f"/api/v1/tasks/{police}/{action}", json={"by": "巨野河派出所 张警官",
                                                                     "note": "警社联动"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status
    assert stack.http.get("/api/v1/tasks", params={"incident_id": iid, "status": "completed"}
                          ).json()["tasks"][0]["task_id"] == police

    timeline = stack.wait_for(
        lambda: (t := stack.http.get(f"/api/v1/incidents/{iid}/timeline").json())
        and t["entries"][-1]["type"] == "task_completed" and t,
        what="task_completed on the timeline")
    entries = timeline["entries"]
    types = [e["type"] for e in entries]
    assert types[:4] == ["alarm_received", "incident_opened", "playbook_matched",
                         "task_dispatched"]
    assert entries[3]["department"] == "property" and entries[3]["task_id"] == verify
    assert types[4:6] == ["alarm_received", "incident_confirmed"]
    assert types[6:11] == ["task_dispatched"] * 5
    assert {e["department"] for e in entries[6:11]} == set(FIVE)
    assert types[-3:] == ["task_acknowledged", "task_started", "task_completed"]
    assert all(e["task_id"] == police for e in entries[-3:])
    assert types.count("alarm_received") == 3
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert timeline["incident"]["incident_id"] == iid


def test_illegal_and_unknown_task_actions(stack):
    r = stack.http.post("/api/v1/alarms", json={
        "alarm_id": "t-illegal:1", "kind": "smoke", "site_id": "jb-wenshao-jiayuan",
        "occurred_at": "2024-01-01T08:00:00+08:00"})
    assert r.status_code == 202
    task = stack.wait_for(lambda: next((t for t in stack.http.get(
        "/api/v1/tasks", params={"department": "property"}).json()["tasks"]
        if t["site_id"] == "jb-wenshao-jiayuan"), None), what="the property task")
    tid = task["task_id"]
    assert task["verification"]
    r = stack.http.post(f"/api/v1/tasks/{tid}/complete", json={"by": "物业"})
    assert r.status_code == 409 and "dispatched" in r.json()["error"]
    r = stack.http.post(f"/api/v1/tasks/{tid}/ack", json={"by": "物业", "outcome": "confirmed"})
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["outcome"]
    r = stack.http.post(f"/api/v1/tasks/{tid}/reject", json={"by": "物业"})
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["note"]
    r = stack.http.post(f"/api/v1/tasks/{tid}/reject", json={"by": "物业", "note": "非本物业辖区"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    r = stack.http.post(f"/api/v1/tasks/{tid}/ack", json={"by": "物业"})
    assert r.status_code == 409
    assert stack.http.post("/api/v1/tasks/no-such-task/ack", json={"by": "x"}).status_code == 404
    assert stack.http.post(f"/api/v1/tasks/{tid}/explode", json={"by": "x"}).status_code == 404
    assert stack.http.get("/api/v1/incidents/inc-nope").status_code == 404
    assert stack.http.get("/api/v1/incidents/inc-nope/timeline").status_code == 404


def test_health_readiness_and_metrics(stack):
    assert stack.http.get("/healthz").json() == {"status": "ok"}
    ready = stack.http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True, "topics": True, "consuming": True, "registry": True, "broker": True,
        "brokers": True, "writes": True, "why": []}
    metrics = stack.http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "whistle_alarm_to_task_seconds_bucket" in metrics.text
    assert_sample(metrics.text, "process_resident_memory_bytes", lambda v: v > 10_000_000)
    assert_sample(metrics.text, "process_cpu_seconds_total", lambda v: v > 0)


def assert_sample(text: str, name: str, ok, **labels) -> float:
    """The one sample `name{labels}` in a scrape, checked by `ok`."""
    found = [s.value for family in text_string_to_metric_families(text)
             for s in family.samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1 and ok(found[0]), f"{name}{labels}: {found}"
    return found[0]


def test_open_tasks_and_acknowledgement_time_per_department(stack):
    """`whistle_open_tasks` counts a new task and stops counting it once completed;
    `whistle_task_ack_seconds` observes its acknowledgement."""
    def scrape(name: str) -> float:
        # a labelled histogram has no series before its first observation: none counts as 0
        found = [s.value for f in text_string_to_metric_families(stack.http.get("/metrics").text)
                 for s in f.samples
                 if s.name == name and s.labels.get("department") == "fire_brigade"]
        assert len(found) <= 1, found
        return sum(found)

    open_before = scrape("whistle_open_tasks")
    acks_before = scrape("whistle_task_ack_seconds_count")
    r = stack.http.post("/api/v1/alarms", json={
        "alarm_id": "t-metrics:1", "kind": "fire_report", "site_id": "t-metrics-site",
        "occurred_at": datetime.now(UTC).isoformat()})
    assert r.status_code == 202
    task = stack.wait_for(lambda: next((t for t in stack.http.get(
        "/api/v1/tasks", params={"department": "fire_brigade"}).json()["tasks"]
        if t["site_id"] == "t-metrics-site"), None), what="the fire brigade's task")
    assert scrape("whistle_open_tasks") == open_before + 1
    url = f"/api/v1/tasks/{task['task_id']}"
    assert stack.http.post(f"{url}/ack", json={"by": "119"}).status_code == 200
    assert scrape("whistle_task_ack_seconds_count") == acks_before + 1
    assert stack.http.post(f"{url}/start", json={"by": "119"}).status_code == 200
    assert stack.http.post(f"{url}/complete", json={"by": "119"}).status_code == 200
    assert scrape("whistle_open_tasks") == open_before


def test_raising_the_level_adds_the_steps_of_that_level_once(stack):
    incident = stack.wait_for(lambda: lab_incidents(stack), what="the lab incident")[0]
    iid, url = incident["incident_id"], f"/api/v1/incidents/{incident['incident_id']}/level"

    def steps():
        return sorted(t["step"] for t in stack.http.get(
            "/api/v1/tasks", params={"incident_id": iid}).json()["tasks"])

    assert "medical" not in steps()                      # laboratory-fire: 120 at level I
    r = stack.http.post(url, json={"level": "I", "by": "安委会办公室 值班领导", "note": "火势扩大"})
    assert r.status_code == 200, r.text
    assert r.json()["level"] == "I" and r.json()["task_ids"][-1] == f"{iid}.medical"
    assert steps().count("medical") == 1
    assert stack.http.post(url, json={"level": "I", "by": "x"}).status_code == 409
    assert stack.http.post(url, json={"level": "II", "by": "x"}).status_code == 200
    assert stack.http.post(url, json={"level": "I", "by": "x"}).status_code == 200
    assert steps().count("medical") == 1                 # never dispatched twice
    assert stack.http.post(url, json={"level": "V", "by": "x"}).json()["details"][0]["loc"] == [
        "level"]
    assert stack.http.post("/api/v1/incidents/inc-nope/level",
                           json={"level": "I", "by": "x"}).status_code == 404

    def level_changes():
        entries = stack.http.get(f"/api/v1/incidents/{iid}/timeline").json()["entries"]
        found = [e for e in entries if e["type"] == "level_changed"]
        return found if len(found) == 3 else None

    changes = stack.wait_for(level_changes, what="three level changes on the timeline")
    assert [(e["detail"]["from"], e["detail"]["to"]) for e in changes] == [
        ("II", "I"), ("I", "II"), ("II", "I")]
    assert (changes[0]["detail"]["note"] == "火势扩大"
            and changes[0]["by"] == "安委会办公室 值班领导")


def test_two_departments_racing_on_one_task_get_one_200_and_one_409(stack):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    task = stack.wait_for(lambda: next((t for t in stack.http.get(
        "/api/v1/tasks", params={"department": "power_supply"}).json()["tasks"]
        if t["site_id"] == LAB and t["status"] == "dispatched"), None), what="a dispatched task")
    url = f"{stack.url}/api/v1/tasks/{task['task_id']}/ack"

    def ack(who: str) -> int:
        return httpx.post(url, json={"by": who}, timeout=15).status_code

    # whichever check catches the loser (the API's or the agent's), exactly one ack wins
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(ack, ["供电所 甲", "供电所 乙"]))
    assert codes == [200, 409]
    final = stack.http.get("/api/v1/tasks", params={"incident_id": task["incident_id"]}).json()
    acked = [t for t in final["tasks"] if t["task_id"] == task["task_id"]][0]
    assert acked["status"] == "acknowledged" and acked["revision"] == 2
