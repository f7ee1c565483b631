"""The duty officer's hand on the real stack, with tokens that name their people: a rejection
reaches the lead, the officer re-assigns it, adds a task, blows the whistle to the district,
whose bureau reports for duty as a named person, cancels a task, opens an incident from a phone
call; a playbook blows the whistle itself at level I. Every role and every bad request is
refused with the field named, and nothing is half-done."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from .conftest import Stack

DEMO = Path(__file__).resolve().parents[2] / "streams" / "demo" / "lab-fire.json"
TOKENS = {
    "admin": ("admin-token-command-0001", "王值班", "safety_office"),
    "gateway": ("gateway-token-command-0001", "", None),
    "police": ("police-token-command-0001", "李警官", "police"),
    "power_supply": ("power-token-command-00001", "赵电工", "power_supply"),
    "district_emergency": ("emergency-token-command-01", "孙科长", "district_emergency"),
}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("command")
    config = tmp / "whistle.yaml"
    config.write_text(yaml.safe_dump({"tokens": [
        {"role": "admin" if who == "admin" else "gateway" if who == "gateway" else "department",
         "token": token, **({"name": name} if name else {}),
         **({"department": dept} if dept else {})}
        for who, (token, name, dept) in TOKENS.items()]}, allow_unicode=True), encoding="utf-8")
    s = Stack(tmp, None, "--config", str(config))
    yield s
    s.stop()


def client(stack: Stack, who: str) -> httpx.Client:
    return httpx.Client(base_url=stack.url, timeout=15,
                        headers={"Authorization": f"Bearer {TOKENS[who][0]}"})


def refused(answer: httpx.Response, status: int, loc: list | None = None) -> None:
    assert answer.status_code == status, answer.text
    if loc is not None:
        assert answer.json()["details"][0]["loc"] == loc, answer.text


def test_reject_reassign_whistle_report_and_close(secured):
    admin, gateway, police, power, bureau = (client(secured, w) for w in TOKENS)
    alarms = json.loads(DEMO.read_text(encoding="utf-8"))
    assert gateway.post("/api/v1/alarms", json=alarms).status_code == 202

    def tasks(**query) -> dict[str, dict]:
        return {t["task_id"]: t for t in admin.get("/api/v1/tasks", params=query).json()["tasks"]}

    mine = secured.wait_for(lambda: power.get("/api/v1/tasks").json()["tasks"], 15,
                            "the power supply's task")
    task = mine[0]
    inc, base = task["incident_id"], f"/api/v1/incidents/{task['incident_id']}"

    rejected = power.post(f"/api/v1/tasks/{task['task_id']}/reject",
                          json={"note": "该楼为专线供电，不归本所", "by": "冒名"})
    assert rejected.status_code == 200 and rejected.json()["by"] == "赵电工", rejected.text
    notice = secured.wait_for(lambda: [t for t in tasks(department="safety_office").values()
                                       if t.get("notice_cause") == "rejected"], 10,
                              "the lead's notice of the rejection")[0]
    assert notice["notice_of"] == task["task_id"] and "请转派或撤销" in notice["action"]

    # each role, each bad request: refused, naming the field; nothing changes
    path = f"/api/v1/tasks/{task['task_id']}"
    refused(police.post(f"{path}/reassign", json={"department": "enforcement"}), 403)
    refused(police.post(f"{base}/whistle", json={"departments": ["district_emergency"],
                                                 "reason": "x"}), 403)
    refused(police.post(f"{base}/close", json={"reason": "handled"}), 403)
    refused(admin.post(f"{path}/reassign", json={"department": "nobody"}), 422, ["department"])
    refused(admin.post("/api/v1/tasks/inc-none.x/reassign", json={"department": "police"}),
            404, ["task_id"])
    refused(admin.post(f"{base}/whistle", json={"departments": ["district_emergency", "nope"],
                                                 "reason": "x"}), 422, ["departments", 1])
    refused(admin.post(f"{base}/whistle", json={"departments": []}), 422)
    refused(admin.post(f"{base}/tasks", json={"department": "ghost", "action": "x"}), 422,
            ["department"])
    refused(admin.post("/api/v1/incidents/inc-none/tasks",
                       json={"department": "police", "action": "x"}), 404, ["incident_id"])
    assert tasks()[task["task_id"]]["replaced_by"] is None, "nothing half-done"

    moved = admin.post(f"{path}/reassign", json={"department": "enforcement",
                                                "note": "请执法队联系产权单位断电"})
    assert moved.status_code == 201, moved.text
    new = moved.json()
    assert (new["department"], new["replaces"], new["step"]) == (
        "enforcement", task["task_id"], task["step"])
    refused(admin.post(f"{path}/reassign", json={"department": "police"}), 409,
            ["replaced_by"])   # re-assigning a task taken over already
    held = tasks()
    assert held[task["task_id"]]["replaced_by"] == new["task_id"]
    assert held[notice["task_id"]]["status"] == "completed"

    called = admin.post(f"{base}/whistle", json={"departments": ["district_emergency"],
                                                 "reason": "实验室火灾，请区应急管理局到场"})
    assert called.status_code == 201, called.text
    [summons] = called.json()["tasks"]
    assert summons["summons"] and summons["department"] == "district_emergency"
    seen = bureau.get("/api/v1/tasks").json()["tasks"]
    assert {t["department"] for t in seen} == {"district_emergency"}, "a bureau sees its own"
    refused(bureau.get("/api/v1/tasks?department=police"), 403)
    reported = bureau.post(f"/api/v1/tasks/{summons['task_id']}/ack", json={})
    assert reported.status_code == 200 and reported.json()["by"] == "孙科长", reported.text

    added = admin.post(f"{base}/tasks", json={"department": "community", "action": "组织疏散",
                                              "ack_within": "5m"})
    assert added.status_code == 201 and added.json()["task_id"] == f"{inc}.added-1"
    dropped = admin.post(f"/api/v1/tasks/{inc}.added-1/cancel", json={"note": "已疏散完毕"})
    assert dropped.status_code == 200 and dropped.json()["status"] == "cancelled"
    refused(admin.post(f"/api/v1/tasks/{inc}.added-1/cancel", json={"note": "again"}), 409,
            ["status"])
    refused(admin.post(f"/api/v1/tasks/{inc}.added-1/reassign",
                       json={"department": "police"}), 409, ["status"])

    cordon = next(t for t in tasks().values() if t["department"] == "police")
    police.post(f"/api/v1/tasks/{cordon['task_id']}/ack", json={})
    noted = police.post(f"/api/v1/tasks/{cordon['task_id']}/progress",
                        json={"note": "警戒线已设置，疏散40人"})
    assert noted.status_code == 200 and noted.json()["by"] == "李警官"

    closed = admin.post(f"{base}/close", json={"reason": "handled", "note": "明火已扑灭"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
    refused(admin.post(f"{base}/whistle", json={"departments": ["district_fire"],
                                                "reason": "x"}), 409, ["status"])

    entries = admin.get(f"{base}/timeline").json()["entries"]
    by = {(e["type"], e.get("task_id")): e.get("by") for e in entries}
    assert by[("task_rejected", task["task_id"])] == "赵电工"
    assert by[("task_reassigned", task["task_id"])] == "王值班"
    assert by[("whistle_blown", None)] == "王值班"
    assert by[("task_acknowledged", summons["task_id"])] == "孙科长"
    assert by[("task_progress", cordon["task_id"])] == "李警官"
    assert by[("task_cancelled", f"{inc}.added-1")] == "王值班"
    assert by[("incident_closed", None)] == "王值班"
    page = admin.get(f"{base}/timeline", params={"format": "html"}).text
    for words in ("转派任务", "吹哨", "到岗报到", "孙科长", "赵电工", "续报"):
        assert words in page, words


def test_an_incident_opened_from_a_call(secured):
    admin = client(secured, "admin")
    refused(admin.post("/api/v1/incidents", json={"site_id": "nowhere"}), 422, ["site_id"])
    refused(admin.post("/api/v1/incidents", json={"site_id": "jb-wenshao-jiayuan",
                                                  "playbook": "nope"}), 422, ["playbook"])
    refused(admin.post("/api/v1/incidents", json={"site_id": "jb-wenshao-jiayuan",
                                                  "level": "V"}), 422, ["level"])
    refused(client(secured, "police").post("/api/v1/incidents",
                                           json={"site_id": "jb-wenshao-jiayuan"}), 403)
    refused(client(secured, "gateway").post("/api/v1/alarms", json={
        "alarm_id": "gw:x", "kind": "smoke", "site_id": "jb-wenshao-jiayuan",
        "occurred_at": "2026-01-01T00:00:00+08:00", "attributes": {"dispatch": {"level": "I"}}}),
        422, ["attributes", "dispatch"])
    opened = admin.post("/api/v1/incidents", json={
        "site_id": "jb-wenshao-jiayuan", "kind": "fire_report", "level": "I",
        "description": "居民来电：3号楼楼道冒烟", "reporter": {"name": "张女士",
                                                      "phone": "13800000000"}})
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert (incident["level"], incident["site_id"], incident["status"]) == (
        "I", "jb-wenshao-jiayuan", "open")
    assert opened.headers["Location"] == f"/api/v1/incidents/{incident['incident_id']}"
    entries = admin.get(f"/api/v1/incidents/{incident['incident_id']}/timeline").json()[
        "entries"]
    [opening] = [e for e in entries if e["type"] == "incident_opened"]
    assert opening["by"] == "王值班"
    assert any(e["type"] == "task_dispatched" for e in entries)

    picked = admin.post("/api/v1/incidents", json={
        "site_id": "ht-wujin-market", "kind": "other", "playbook": "gas-leak",
        "description": "网格员报告：商户液化气罐泄漏"})
    assert picked.status_code == 201 and picked.json()["playbook"]["id"] == "gas-leak"


def test_a_playbook_blows_the_whistle_at_level_one(secured):
    admin, gateway = client(secured, "admin"), client(secured, "gateway")
    answer = gateway.post("/api/v1/alarms", json={
        "alarm_id": "gw-ht:hazmat-1", "kind": "hazmat", "site_id": "ht-old-warehouse-3",
        "occurred_at": "2026-01-01T00:00:00+08:00", "description": "仓库内发现大量桶装醇基燃料"})
    assert answer.status_code == 202, answer.text
    incident = secured.wait_for(lambda: [i for i in admin.get(
        "/api/v1/incidents", params={"site_id": "ht-old-warehouse-3"}).json()["incidents"]
        if i["playbook"]["id"] == "warehouse-hazmat"], 15, "the hazmat incident")[0]
    base = f"/api/v1/incidents/{incident['incident_id']}"

    def summoned() -> set[str]:
        return {t["department"] for t in admin.get(
            "/api/v1/tasks", params={"incident_id": incident["incident_id"]}).json()["tasks"]
                if t["summons"]}

    assert summoned() == set(), "level II: nobody called in yet"
    assert admin.post(f"{base}/level", json={"level": "I"}).status_code == 200
    assert secured.wait_for(summoned, 10, "the district called in") == {
        "district_emergency", "district_fire", "district_ecology"}
    [blown] = [e for e in admin.get(f"{base}/timeline").json()["entries"]
               if e["type"] == "whistle_blown"]
    assert blown["by"] == "whistle" and blown["detail"]["rule"] == 0
