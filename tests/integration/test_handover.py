"""The shift handover (交接班) on the real stack, with tokens: the laboratory fire is still open
with its departments' tasks, then closed by hand and handed over as opened and closed, as JSON,
Markdown and a printable page; `whistle handover` prints it; only an admin reads it, and a
shift without `since` is refused naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration import test_auth
from tests.integration.conftest import Stack

DEMO = Path(__file__).resolve().parents[2] / "streams" / "demo" / "lab-fire.json"
WHISTLE = Path(sys.executable).parent / "whistle"
ADMIN, POLICE = test_auth.TOKENS["admin"], test_auth.TOKENS["police"]
secured = test_auth.secured  # a stack of its own with test_auth's tokens (an admin, the police)
SINCE = "2023-05-16T00:00:00+08:00"  # the demo's alarms are of that day; closed today


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def handover(stack: Stack, token: str = ADMIN, **query: str):
    return stack.http.get("/api/v1/handover", params={"since": SINCE, **query},
                          headers=auth(token))


def test_the_lab_fire_is_handed_over_open_then_closed(secured):
    alarms = json.loads(DEMO.read_text(encoding="utf-8"))
    assert secured.http.post("/api/v1/alarms", json=alarms,
                             headers=auth(ADMIN)).status_code == 202

    def police() -> dict | None:
        tasks = secured.http.get("/api/v1/tasks", headers=auth(ADMIN)).json()["tasks"]
        return next((t for t in tasks if t["department"] == "police"), None)

    inc = secured.wait_for(police, 15, "the police task")["incident_id"]
    before = handover(secured).json()
    [still] = [r for r in before["still_open"] if r["incident_id"] == inc]
    assert {t["department"] for t in still["tasks"]} >= {"police"}
    assert [r["incident_id"] for r in before["opened"]] == [inc] and before["closed"] == []

    closed = secured.http.post(f"/api/v1/incidents/{inc}/close", headers=auth(ADMIN),
                               json={"reason": "handled", "note": "明火已扑灭"})
    assert closed.status_code == 200, closed.text
    after = handover(secured)
    assert after.status_code == 200 and after.headers["content-type"].startswith(
        "application/json")
    body = secured.wait_for(lambda: (b := handover(secured).json())["overdue"] == []
                            and b["still_open"] == [] and b, 10, "every task cancelled")
    assert [r["incident_id"] for r in body["opened"]] == [inc]
    assert [(r["incident_id"], r["close_reason"]) for r in body["closed"]] == [(inc, "handled")]
    assert body["counts"]["opened"] == body["counts"]["closed"] == 1

    md = handover(secured, format="md")
    assert md.headers["content-type"] == "text/markdown; charset=utf-8"
    lines = md.text.splitlines()
    assert lines[0] == "# 交接班报告 Shift handover" and "## 本班结案 Closed" in lines
    assert any(x.startswith(f"| {inc} |") and "人工结案" in x for x in lines)
    page = handover(secured, format="html")
    assert page.headers["content-security-policy"] == ("default-src 'none'; "
                                                       "style-src 'unsafe-inline'")
    assert "@page { size: A4; margin: 15mm }" in page.text and "<script" not in page.text
    assert page.text.count(f'<tr data-key="{inc}">') == 2, "opened and closed"

    part = secured.http.get("/api/v1/handover", params={"since": SINCE, "format": "html"},
                            headers={**auth(ADMIN), "X-Whistle-Forwarded": "http://peer"})
    [own] = part.json()["parts"]  # another worker's question: this one's partitions, as JSON
    assert [i["incident_id"] for i in own["incidents"]] == [inc] and own["tasks"] == []

    printed = subprocess.run([str(WHISTLE), "handover", "--since", SINCE, "--url", secured.url,
                              "--token", ADMIN], capture_output=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    out = printed.stdout.decode("utf-8").splitlines()
    assert out[:2] + out[3:] == lines[:2] + lines[3:], "the same, but for when it was made"
    refused = subprocess.run([str(WHISTLE), "handover", "--since", SINCE, "--url", secured.url,
                              "--token", POLICE], capture_output=True, timeout=60)
    assert refused.returncode == 1 and b"403" in refused.stderr


def test_only_an_admin_reads_it_and_a_bad_shift_names_its_parameter(secured):
    assert handover(secured, POLICE).status_code == 403
    assert secured.http.get("/api/v1/handover", params={"since": SINCE}).status_code == 401
    for query, loc in (({}, "since"), ({"since": "yesterday"}, "since"),
                       ({"since": SINCE, "until": "2023-05-15T00:00:00+08:00"}, "until"),
                       ({"since": SINCE, "format": "pdf"}, "format")):
        answer = secured.http.get("/api/v1/handover", params=query, headers=auth(ADMIN))
        assert answer.status_code == 422, answer.text
        assert answer.json()["details"][0]["loc"] == ["query", loc]
