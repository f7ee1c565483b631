"""Reloading playbooks on the running service: a valid set takes effect, an invalid set is
refused and the running set stays, an incident in flight keeps its version, and steps that
wait for others are dispatched when those complete."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from playbooks import LIBRARY

from .conftest import Stack

GAS_V1 = """
id: factory-gas
version: 1
title: 厂房燃气泄漏
level: II
match: {kinds: [gas], signals: [alarm], site_types: [factory]}
steps:
  - {id: valve, department: gas_utility, action: 关阀止漏 (v1), ack_within: 2m, complete_within: 1h}
  - {id: inspect, department: enforcement, action: 复查 (v1), ack_within: 1h, complete_within: 3d,
     after: [valve]}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reload")
    books = tmp / "playbooks"
    shutil.copytree(LIBRARY, books)
    stack = Stack(tmp, {"WHISTLE_PLAYBOOKS_WATCH": "0.5"}, "--playbooks", str(books))
    stack.books = books
    yield stack
    stack.stop()


def gas(stack, alarm_id: str, minute: int) -> dict:
    r = stack.http.post("/api/v1/alarms", json={
        "alarm_id": alarm_id, "kind": "gas", "site_id": "cq-xianna-factory",
        "occurred_at": f"2024-07-01T09:{minute:02d}:00+08:00"})
    assert r.status_code == 202, r.text
    return stack.wait_for(lambda: next((i for i in stack.http.get("/api/v1/incidents").json()[
        "incidents"] if alarm_id in i["alarm_ids"]), None), what=f"incident of {alarm_id}")


def tasks_of(stack, incident_id: str) -> dict[str, dict]:
    return {t["step"]: t for t in stack.http.get("/api/v1/tasks", params={
        "incident_id": incident_id}).json()["tasks"]}


def digest(stack) -> str:
    return stack.http.get("/api/v1/playbooks").json()["digest"]


def test_reload_takes_effect_refuses_bad_sets_and_keeps_versions_in_flight(live):
    before = gas(live, "reload:1", 0)
    assert before["playbook"]["id"] == "gas-leak"        # the library's generic gas plan

    (live.books / "factory-gas.yaml").write_text(GAS_V1, encoding="utf-8")
    r = live.http.post("/api/v1/playbooks/reload")
    assert r.status_code == 200, r.text
    assert "factory-gas" in {p["id"] for p in r.json()["playbooks"]}
    v1 = gas(live, "reload:2", 15)                        # past the window: a new incident
    assert v1["playbook"]["id"] == "factory-gas" and v1["playbook"]["version"] == "1"
    assert set(tasks_of(live, v1["incident_id"])) == {"valve"}   # inspect waits for valve

    # version 2 changes the text; the incident matched with version 1 keeps version 1
    (live.books / "factory-gas.yaml").write_text(
        GAS_V1.replace("version: 1", "version: 2").replace("(v1)", "(v2)"), encoding="utf-8")
    assert live.http.post("/api/v1/playbooks/reload").status_code == 200
    good = digest(live)

    # an invalid set is refused with file and line, and the running set stays
    (live.books / "zz-broken.yaml").write_text("id: zz\nversion: 1\ntitle: x\nlevel: V\n"
                                               "steps: []\n", encoding="utf-8")
    r = live.http.post("/api/v1/playbooks/reload")
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["details"]]
    assert [str(live.books / "zz-broken.yaml"), 4] in locs
    assert digest(live) == good
    out = subprocess.run([sys.executable, "-m", "streams.cli", "playbooks", "reload", "--url",
                          live.url], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "zz-broken.yaml:4:" in out.stdout
    (live.books / "zz-broken.yaml").unlink()

    valve = tasks_of(live, v1["incident_id"])["valve"]["task_id"]
    for action in ("ack", "complete"):
        assert live.http.post(f"/api/v1/tasks/{valve}/{action}", json={"by": "燃气抢修"}
                              ).status_code == 200
    inspect = live.wait_for(lambda: tasks_of(live, v1["incident_id"]).get("inspect"),
                            what="the step waiting for valve")
    assert inspect["action"] == "复查 (v1)" and inspect["status"] == "dispatched"
    url = f"/api/v1/incidents/{v1['incident_id']}/timeline"
    live.wait_for(lambda: [e["type"] for e in live.http.get(url).json()["entries"]][-3:] == [
        "task_acknowledged", "task_completed", "task_dispatched"], what="the timeline")

    v2 = gas(live, "reload:3", 30)
    assert v2["playbook"]["version"] == "2"
    assert tasks_of(live, v2["incident_id"])["valve"]["action"] == "关阀止漏 (v2)"


def test_a_changed_file_is_picked_up_without_a_command(live):
    before = digest(live)
    path = live.books / "factory-gas.yaml"
    path.write_text(path.read_text("utf-8").replace("title: 厂房燃气泄漏",
                                                    "title: 厂房燃气泄漏处置"), encoding="utf-8")
    live.wait_for(lambda: digest(live) != before, timeout=10, what="the watcher to reload")
    titles = {p["id"]: p["title"] for p in live.http.get("/api/v1/playbooks").json()["playbooks"]}
    assert titles["factory-gas"] == "厂房燃气泄漏处置"
    # a broken file on disk is refused by the watcher too, and the set stays
    now = digest(live)
    (live.books / "zz.yaml").write_text("id: [", encoding="utf-8")
    time.sleep(2)
    assert digest(live) == now
    assert 'whistle_playbook_reloads_total{result="refused"}' in live.http.get("/metrics").text
