"""The device fleet on the real stack (issue 20): heartbeats carry the battery and signal
strength; a battery at or below the threshold opens one maintenance task (GB 20517's battery
fault, never a fire), however many low heartbeats follow; `GET /api/v1/devices` lists the
device as low on battery; bad readings and a bad status are refused naming the field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from .conftest import Stack

pytestmark = pytest.mark.integration

SITE = "jyh-yinfeng-lab-3"  # a demo site (streams/demo/sites.yaml)


def beat(device: str, **attributes) -> dict:
    return {"alarm_id": f"hb-{uuid.uuid4().hex[:10]}", "kind": "smoke", "signal": "test",
            "site_id": SITE, "device_id": device,
            "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "attributes": attributes}


def tasks_of(stack: Stack, device: str) -> list[tuple[dict, dict]]:
    """The tasks of incidents about the device, each with its incident."""
    found = []
    for task in stack.http.get("/api/v1/tasks", params={"site_id": SITE}).json()["tasks"]:
        incident = stack.http.get(f"/api/v1/incidents/{task['incident_id']}").json()
        if incident.get("family") == f"maintenance:{device}":
            found.append((task, incident))
    return found


def test_a_low_battery_opens_one_task(stack: Stack):
    device = f"smk-bat-{uuid.uuid4().hex[:6]}"
    for battery in (80, 15, 14):
        answer = stack.http.post("/api/v1/alarms", json=beat(device, battery=battery, signal=-70))
        assert answer.status_code == 202, answer.text

    def low() -> list[dict]:
        return [d for d in stack.http.get("/api/v1/devices", params={
            "status": "low_battery"}).json()["devices"] if d["device_id"] == device
                and d["battery"] == 14]

    shown = stack.wait_for(low, 20, "the device listed with its low battery")[0]
    assert (shown["site_id"], shown["grid"], shown["signal"]) == (SITE, "JYH-G2", -70)
    assert "low_battery" in shown["status"] and shown["last_signal"] == "test"
    found = stack.wait_for(lambda: tasks_of(stack, device), 20, "the maintenance task")
    more = stack.http.post("/api/v1/alarms", json=beat(device, battery=13))  # still low
    assert more.status_code == 202, more.text
    stack.wait_for(lambda: any(d["battery"] == 13 for d in stack.http.get(
        "/api/v1/devices", params={"site_id": SITE}).json()["devices"]
        if d["device_id"] == device), 20, "the newest reading")
    found = tasks_of(stack, device)
    assert len(found) == 1, found
    task, incident = found[0]
    assert incident["playbook"]["id"] == "device-maintenance"
    assert task["department"] == "property"
    assert not any(i["playbook"]["id"] != "device-maintenance" for _, i in found)
    offline = stack.http.get("/api/v1/devices", params={"status": "offline"}).json()
    assert device not in {d["device_id"] for d in offline["devices"]}
    page = stack.http.get("/api/v1/devices", params={"limit": 1}).json()
    assert len(page["devices"]) == 1 and "next_cursor" in page


@pytest.mark.parametrize("attributes, field", [
    ({"battery": "abc"}, "battery"), ({"battery": 150}, "battery"),
    ({"battery": True}, "battery"), ({"signal": 20}, "signal")])
def test_bad_readings_are_refused_naming_the_attribute(stack: Stack, attributes, field):
    answer = stack.http.post("/api/v1/alarms", json=beat("smk-bad", **attributes))
    assert answer.status_code == 422, answer.text
    assert [d["loc"][-2:] for d in answer.json()["details"]] == [["attributes", field]]


@pytest.mark.parametrize("query, name", [
    ({"status": "nope"}, "status"), ({"limit": "0"}, "limit"),
    ({"limit": "5", "cursor": "!!"}, "cursor")])
def test_a_bad_query_is_refused_naming_the_parameter(stack: Stack, query, name):
    answer = stack.http.get("/api/v1/devices", params=query)
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"][0]["loc"] == ["query", name]
