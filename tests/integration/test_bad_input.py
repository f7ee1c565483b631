"""Bad input at the edge and on the topics: clear errors, nothing lost, nothing half-accepted."""

from __future__ import annotations

import base64
import json

from schemas import topics

from .kafka import produce, read_topic


def alarm(alarm_id: str, **over) -> dict:
    data = {"alarm_id": alarm_id, "kind": "smoke", "site_id": "cq-cangyi-lvyuan",
            "occurred_at": "2024-03-01T21:15:00+08:00"}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def post_raw(stack, body: bytes, content_type: str = "application/json"):
    return stack.http.post("/api/v1/alarms", content=body, headers={"Content-Type": content_type})


def test_not_json_is_400(stack):
    r = post_raw(stack, b"{this is not json")
    assert r.status_code == 400
    assert r.json()["details"][0]["loc"] == ["body"]


def test_wrong_content_type_is_415(stack):
    r = post_raw(stack, json.dumps(alarm("ct:1")).encode(), "text/plain")
    assert r.status_code == 415
    assert "application/json" in r.json()["error"]


def test_body_over_one_mebibyte_is_413(stack):
    huge = json.dumps(alarm("big:1", attributes={"pad": "x" * (1024 * 1024)})).encode()
    assert post_raw(stack, huge).status_code == 413


def test_missing_field_and_bad_timestamp_are_422_naming_the_field(stack):
    r = stack.http.post("/api/v1/alarms", json=alarm("miss:1", kind=None))
    assert r.status_code == 422
    assert r.json()["details"] == [{"loc": ["kind"], "msg": "Field required"}]
    r = stack.http.post("/api/v1/alarms", json=alarm("ts:1", occurred_at="2024-03-01 evening"))
    assert r.status_code == 422
    assert r.json()["details"][0]["loc"] == ["occurred_at"]
    assert "RFC 3339" in r.json()["details"][0]["msg"]
    r = stack.http.post("/api/v1/alarms", json=alarm("ts:2", occurred_at="2999-01-01T00:00:00Z"))
    assert r.status_code == 422 and "future" in r.json()["details"][0]["msg"]
    r = stack.http.post("/api/v1/alarms", json="smoke!")
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["body"]


async def test_a_batch_with_one_bad_alarm_accepts_nothing(stack):
    good, bad = alarm("batch:good"), alarm("batch:bad", occurred_at="soon")
    r = stack.http.post("/api/v1/alarms", json=[good, bad])
    assert r.status_code == 422
    assert r.json()["details"][0]["loc"] == [1, "occurred_at"]
    assert stack.http.post("/api/v1/alarms", json=[]).status_code == 422
    assert stack.http.post("/api/v1/alarms", json=[good] * 1001).status_code == 422
    r = stack.http.post("/api/v1/alarms", json=alarm("batch:after"))
    assert r.status_code == 202
    on_topic = [json.loads(rec.value)["alarm_id"] for rec in
                await read_topic(stack.broker, topics.ALARMS)]
    assert "batch:after" in on_topic and "batch:good" not in on_topic


def test_unknown_kind_reaches_the_fallback_playbook(stack):
    r = stack.http.post("/api/v1/alarms", json=alarm("odd:1", kind="sinkhole",
                                                     site_id="ps-wenhui-community"))
    assert r.status_code == 202
    incident = stack.wait_for(lambda: stack.http.get(
        "/api/v1/incidents", params={"site_id": "ps-wenhui-community"}).json()["incidents"],
        what="an incident for the unknown kind")[0]
    assert incident["kind"] == "sinkhole" and incident["playbook"]["id"] == "fallback"
    assert incident["task_ids"]


def test_unregistered_site_and_located_report_are_still_dispatched(stack):
    r = stack.http.post("/api/v1/alarms", json=[
        alarm("nosite:1", site_id="not-in-registry"),
        alarm("located:1", site_id=None, kind="fire_report",
              location={"address": "济南高新区 科荟路 88号"}, reporter={"name": "路人"})])
    assert r.status_code == 202

    def mine():
        found = [i for i in stack.http.get("/api/v1/incidents").json()["incidents"]
                 if {"nosite:1", "located:1"} & set(i["alarm_ids"])]
        return found if len(found) == 2 else None

    found = {i["alarm_ids"][0]: i for i in stack.wait_for(mine, what="both incidents")}
    assert found["nosite:1"]["site_id"] == "not-in-registry"
    assert found["located:1"]["site_id"].startswith("adhoc-")
    assert found["nosite:1"]["playbook"]["id"] == "fallback"
    assert found["located:1"]["playbook"]["id"] == "citizen-fire-report"
    assert all(i["task_ids"] for i in found.values())


async def test_poison_on_the_topic_goes_to_the_dead_letter_topic_and_the_next_is_processed(stack):
    garbage = b"\x00\xffnot an alarm"
    wrong = json.dumps({"alarm_id": "poison:2", "kind": "smoke"}).encode()
    good = json.dumps(alarm("poison:3", site_id="ht-wujin-market")).encode()
    key = b"ht-wujin-market"
    await produce(stack.broker, topics.ALARMS, [(key, garbage), (key, wrong), (key, good)])
    stack.wait_for(lambda: stack.http.get("/api/v1/incidents", params={
        "site_id": "ht-wujin-market"}).json()["incidents"], what="the good alarm processed")
    letters = [json.loads(r.value) for r in await read_topic(stack.broker, topics.DLQ)]
    by_raw = {base64.b64decode(letter["value_base64"]): letter for letter in letters}
    assert by_raw[garbage]["reason"].startswith("not UTF-8")
    assert by_raw[garbage]["source_topic"] == topics.ALARMS
    assert by_raw[wrong]["reason"] == "Alarm invalid: occurred_at: Field required"
    assert by_raw[wrong]["value_text"] == wrong.decode()
