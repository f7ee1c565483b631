"""Maintenance silences (检修屏蔽) on the real stack: a silenced trouble signal and a single
detector dispatch nothing and are on the silence's record, while a fire report at the same
site breaks through (its timeline says so); a silence ends on time, and both survive a restart
of `whistle up`; bad requests are refused naming the field, with nothing created."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .conftest import Stack

pytestmark = pytest.mark.integration

LAB, HOME = "jyh-yinfeng-lab-3", "jyh-huangjingu-b7"  # demo sites (streams/demo/sites.yaml)


def at(seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def alarm(site: str, kind: str = "smoke", signal: str = "alarm", device: str | None = None
          ) -> dict:
    return {"alarm_id": f"sil-test-{uuid.uuid4().hex[:10]}", "kind": kind, "signal": signal,
            "site_id": site, "occurred_at": at(), **({"device_id": device} if device else {})}


def silence(stack: Stack, ends_in: float, **matchers) -> dict:
    answer = stack.http.post("/api/v1/silences", json={
        "matchers": matchers, "ends_at": at(ends_in), "reason": "烟感年检", "by": "王值班"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def post(stack: Stack, *alarms: dict) -> None:
    answer = stack.http.post("/api/v1/alarms", json=list(alarms))
    assert answer.status_code == 202, answer.text


def muted(stack: Stack, silence_id: str) -> list[str]:
    entries = stack.http.get(f"/api/v1/silences/{silence_id}").json()["muted"]
    assert {e["type"] for e in entries} <= {"alarm_silenced"}
    return [e["alarm_id"] for e in entries]


def incidents(stack: Stack, site: str) -> list[dict]:
    return stack.http.get("/api/v1/incidents", params={"site_id": site}).json()["incidents"]


def test_silences_hold_back_maintenance_noise_never_a_fire(tmp_path: Path):
    data = tmp_path / "data"
    first = Stack(tmp_path, data=data)
    try:
        lab = silence(first, 3600, site_id=LAB)
        assert (lab["state"], lab["created_by"]) == ("active", "王值班")
        refused = [
            ({"matchers": {}}, ["matchers"]),
            ({"matchers": {"site_id": LAB}, "ends_at": at(-60)}, ["ends_at"]),
            ({"matchers": {"site_id": LAB}, "starts_at": at(600), "ends_at": at(60)},
             ["ends_at"]),
            ({"matchers": {"site_id": "no-such-site"}}, ["matchers", "site_id"]),
            ({"matchers": {"grid": "NO-GRID"}}, ["matchers", "grid"]),
            ({"matchers": {"site_type": "castle"}}, ["matchers", "site_type"]),
            ({"matchers": {"site_id": LAB}, "reason": ""}, ["reason"]),
        ]
        for body, loc in refused:
            answer = first.http.post("/api/v1/silences", json={
                "ends_at": at(600), "reason": "检修", "by": "王值班", **body})
            assert answer.status_code == 422 and answer.json()["details"][0]["loc"] == loc, \
                (body, answer.text)
        assert [s["silence_id"] for s in first.http.get("/api/v1/silences").json()["silences"]
                ] == [lab["silence_id"]], "nothing half-created"

        trouble, smoke = alarm(LAB, signal="trouble", device="smk-lab3-09"), \
            alarm(LAB, device="smk-lab3-02")
        post(first, trouble, smoke)
        first.wait_for(lambda: sorted(muted(first, lab["silence_id"])) == sorted(
            [trouble["alarm_id"], smoke["alarm_id"]]), 15, "both on the silence's record")
        assert incidents(first, LAB) == [] and first.http.get("/api/v1/tasks").json()[
            "tasks"] == [], "nothing dispatched"

        report = {**alarm(LAB, kind="fire_report"), "reporter": {"name": "企业值班人员"}}
        post(first, report)
        [incident] = first.wait_for(lambda: [i for i in incidents(first, LAB) if i["task_ids"]],
                                    15, "the fire report's incident, dispatched")
        entries = first.http.get(f"/api/v1/incidents/{incident['incident_id']}/timeline"
                                 ).json()["entries"]
        [received] = [e for e in entries if e["type"] == "alarm_received"]
        assert received["alarm_id"] == report["alarm_id"]
        assert received["detail"]["broke_silence"] == lab["silence_id"]
        assert "smk-lab3-02" in incident["evidence"]["devices"], "the muted detector counts"
        page = first.http.get(f"/api/v1/incidents/{incident['incident_id']}/timeline",
                              params={"format": "md"}).text
        assert f"突破检修屏蔽 {lab['silence_id']}" in page

        # a silence ends on time: the same device's next trouble signal is dispatched
        home = silence(first, 4, site_id=HOME)
        post(first, alarm(HOME, signal="trouble", device="smk-b7-01"))
        first.wait_for(lambda: muted(first, home["silence_id"]), 10, "the first trouble muted")
        time.sleep(max(0.0, datetime.fromisoformat(home["ends_at"]).timestamp() - time.time()))
        assert first.http.get(f"/api/v1/silences/{home['silence_id']}").json()["state"] \
            == "expired"
        post(first, alarm(HOME, signal="trouble", device="smk-b7-01"))
        first.wait_for(lambda: [i for i in incidents(first, HOME) if i["task_ids"]], 15,
                       "the trouble after the silence, dispatched")
        assert first.stop() < 15 and first.process.returncode == 0
    finally:
        first.stop()

    second = Stack(tmp_path, data=data)
    try:
        states = {s["silence_id"]: s["state"] for s in second.http.get(
            "/api/v1/silences").json()["silences"]}
        assert states == {lab["silence_id"]: "active", home["silence_id"]: "expired"}
        assert len(second.wait_for(lambda: muted(second, lab["silence_id"]), 15,
                                   "the silence's record after the restart")) == 2
        again = alarm(LAB, signal="trouble", device="smk-lab3-09")
        post(second, again)
        second.wait_for(lambda: again["alarm_id"] in muted(second, lab["silence_id"]), 15,
                        "still held back after the restart")

        assert second.http.post(f"/api/v1/silences/{lab['silence_id']}/expire", json={}
                                ).json()["details"][0]["loc"] == ["by"], "who ends it?"
        expired = second.http.post(f"/api/v1/silences/{lab['silence_id']}/expire",
                                   json={"by": "王值班"})
        assert expired.status_code == 200 and expired.json()["state"] == "expired"
        assert expired.json()["expired_by"] == "王值班"
        for silence_id, status in ((lab["silence_id"], 409), ("sil-none", 404)):
            assert second.http.post(f"/api/v1/silences/{silence_id}/expire",
                                    json={"by": "王值班"}).status_code == status
        assert [s["silence_id"] for s in second.http.get(
            "/api/v1/silences", params={"state": "active"}).json()["silences"]] == []
    finally:
        second.stop()
