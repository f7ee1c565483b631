"""Finding incidents and tasks on the real stack: filters, and pages walked with the cursor
giving the same items as the whole list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def now(minutes: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat(timespec="seconds")


ALARMS = [
    {"alarm_id": "find:1", "kind": "fire_report", "site_id": "jb-wenshao-jiayuan",
     "occurred_at": now(-3), "description": "闻韶佳苑 3 单元冒烟"},
    {"alarm_id": "find:2", "kind": "smoke", "site_id": "jb-anking-restaurant-12",
     "device_id": "find-smk-1", "occurred_at": now(-2)},
    {"alarm_id": "find:3", "kind": "gas", "site_id": "ht-wujin-market", "occurred_at": now(-1)},
]
SITES = {a["site_id"] for a in ALARMS}


def test_filters_and_pages(stack):
    assert stack.http.post("/api/v1/alarms", json=ALARMS).status_code == 202

    def incidents(**params) -> list[dict]:
        return stack.http.get("/api/v1/incidents", params=params).json()["incidents"]

    mine = stack.wait_for(lambda: (found := [i for i in incidents() if i["site_id"] in SITES])
                          and len(found) == 3 and found, 20, "three incidents")
    by_site = {i["site_id"]: i for i in mine}
    assert [i["site_id"] for i in incidents(kind="gas") if i["site_id"] in SITES] == [
        "ht-wujin-market"]
    assert [i["incident_id"] for i in incidents(grid="JB-117")] == [
        by_site["jb-wenshao-jiayuan"]["incident_id"]]
    assert [i["site_id"] for i in incidents(q="闻韶")] == ["jb-wenshao-jiayuan"]
    assert incidents(since=now(5)) == []
    fire = by_site["jb-wenshao-jiayuan"]
    assert fire["incident_id"] in {i["incident_id"] for i in incidents(level=fire["level"])}
    assert fire["incident_id"] not in {i["incident_id"] for i in incidents(
        level="IV" if fire["level"] != "IV" else "I")}
    police = {i["incident_id"] for i in incidents(department="police")}
    tasks = stack.http.get("/api/v1/tasks", params={"department": "police"}).json()["tasks"]
    assert police == {t["incident_id"] for t in tasks}

    whole = incidents()
    seen, params = [], {"limit": "2"}
    while True:
        answer = stack.http.get("/api/v1/incidents", params=params).json()
        seen += answer["incidents"]
        if answer["next_cursor"] is None:
            break
        params = {"limit": "2", "cursor": answer["next_cursor"]}
    assert [i["incident_id"] for i in seen] == [i["incident_id"] for i in whole]

    all_tasks = stack.http.get("/api/v1/tasks").json()["tasks"]
    in_market = stack.http.get("/api/v1/tasks", params={"site_id": "ht-wujin-market"}).json()
    assert {t["incident_id"] for t in in_market["tasks"]} == {
        by_site["ht-wujin-market"]["incident_id"]}
    assert "next_cursor" not in in_market, "without limit the answer is whole, as it was"
    first = stack.http.get("/api/v1/tasks", params={"limit": "1"}).json()
    assert first["tasks"] == all_tasks[:1] and first["next_cursor"]

    bad = stack.http.get("/api/v1/tasks", params={"limit": "1", "cursor": "nope"})
    assert bad.status_code == 422 and bad.json()["details"][0]["loc"] == ["query", "cursor"]
