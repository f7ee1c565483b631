"""Intruders on the real stack: rate limits per token (429 with Retry-After; a role's refusals
count too), token guessing limited by address, a body that is too large, requests that are not
HTTP (JSON answers, one log line, no credential in it), ids with control characters, JSON that
is not UTF-8, reporters' phones as a department sees them, and no token or secret in any log
line."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime

import httpx
import pytest

from streams.kafka.broker import free_port
from tests.integration.conftest import Stack

TOKENS = {"gateway": "gateway-token-intruder-01", "police": "police-token-intruder-001",
          "admin": "admin-token-intruder-0001"}
SECRET = "webhook-secret-that-must-never-be-logged"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("intruders")
    config = tmp / "whistle.yaml"
    dead = free_port()  # nobody listens: every delivery fails, and is logged
    config.write_text(
        "tokens:\n"
        f"  - {{role: gateway, token: {TOKENS['gateway']}}}\n"
        f"  - {{role: department, department: police, token: {TOKENS['police']}}}\n"
        f"  - {{role: admin, token: {TOKENS['admin']}}}\n"
        "webhooks:\n"
        f"  police: {{url: 'http://127.0.0.1:{dead}/hook', secret: '{SECRET}', attempts: 2,"
        " backoff: 50ms, timeout: 500ms}\n", encoding="utf-8")
    stack = Stack(tmp, {"WHISTLE_RATE_LIMIT": "2", "WHISTLE_RATE_BURST": "5",
                        "WHISTLE_LOG_LEVEL": "info"}, "--config", str(config))
    yield stack
    stack.stop()


def bearer(role_or_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.get(role_or_token, role_or_token)}"}


def alarm(alarm_id: str) -> dict:
    return {"alarm_id": alarm_id, "kind": "fire_report", "site_id": "jyh-yinfeng-lab-3",
            "occurred_at": datetime.now(UTC).isoformat(timespec="seconds")}


def test_a_token_over_its_rate_gets_429_with_retry_after_and_others_go_on(guarded):
    answers = [guarded.http.post("/api/v1/alarms", json=alarm(f"rl-{i}"),
                                 headers=bearer("gateway")) for i in range(8)]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [202] * 5 and 429 in codes[5:], codes
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["details"][0]["loc"] == ["Authorization"]
    assert "2 requests/s" in refused.json()["error"]
    assert guarded.http.get("/api/v1/tasks", headers=bearer("police")).status_code == 200
    assert guarded.http.get("/healthz").status_code == 200, "probes are never limited"
    time.sleep(int(refused.headers["Retry-After"]))
    assert guarded.http.post("/api/v1/alarms", json=alarm("rl-after"),
                             headers=bearer("gateway")).status_code == 202


def test_guessing_tokens_is_limited_by_address(guarded):
    codes = [guarded.http.get("/api/v1/tasks", headers=bearer(f"guess-{i:020d}")).status_code
             for i in range(10)]
    assert codes[:5] == [401] * 5 and codes[-1] == 429, codes


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(guarded):
    time.sleep(3)  # a full bucket
    big = b"[" + b" " * (1024 * 1024 + 10) + b"]"
    answer = guarded.http.post("/api/v1/alarms", content=big, headers={
        **bearer("gateway"), "Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["details"][0]["loc"] == ["body"]


def test_no_token_or_secret_in_any_log_line(guarded):
    def delivery_failed():  # the webhook failed and was logged by now
        answer = guarded.http.get("/api/v1/tasks", headers=bearer("admin"),
                                  params={"department": "safety_office"})
        if answer.status_code == 429:  # this stack's tokens are limited to 2/s: look again
            return False
        return any(t.get("notice_cause") == "delivery_failed" for t in answer.json()["tasks"])
    time.sleep(3)
    guarded.wait_for(delivery_failed, 30, "the failed delivery escalated")
    logged = "".join(guarded.output)
    assert "INFO" in logged or "WARNING" in logged, "the test must see the worker's log"
    for secret in (*TOKENS.values(), SECRET, "guess-0000000000000000000"):
        assert secret not in logged, f"{secret[:8]}... appears in the log"
    with httpx.Client(base_url=guarded.url) as client:  # and not in what the API says
        metrics = client.get("/metrics").text
    assert not any(s in metrics for s in (*TOKENS.values(), SECRET))


def raw_request(stack: Stack, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (httpx would refuse to send most of these) and read the answer."""
    port = int(stack.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


def test_refusals_of_a_role_count_against_its_rate_limit(guarded):
    time.sleep(3)  # a full bucket
    codes = [guarded.http.get("/api/v1/tasks", headers=bearer("gateway")).status_code
             for _ in range(12)]
    assert codes[:5] == [403] * 5 and 429 in codes[5:], codes


def test_malformed_requests_are_json_and_logged_once_without_credentials(guarded):
    token = TOKENS["admin"]
    cases = {  # what is sent: the status and the field the answer names
        "a header line past 8 KiB after a real token":
            (f"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
             f"{'A' * 9000}\r\n\r\n".encode(), 431, "headers"),
        "a URL past 8 KiB": (f"GET /api/v1/tasks?{'q' * 9000} HTTP/1.1\r\nHost: x\r\n"
                             f"Authorization: Bearer {token}\r\n\r\n".encode(), 414, "url"),
        "bytes that are not a header": (f"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\n"
                                        f"Authorization: Bearer {token}\r\n\xff\xfe\x00: "
                                        f"\x01\r\n\r\n".encode("latin-1"), 400, "request"),
        "a header name with a space": (f"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuth "
                                       f"orization: Bearer {token}\r\n\r\n".encode(), 400,
                                       "request"),
    }
    before = len(guarded.output)
    for name, (request, status, loc) in cases.items():
        got, fields, body = raw_request(guarded, request)
        assert got == status, f"{name}: {got} {body[:200]!r}"
        assert fields["content-type"].startswith("application/json"), name
        assert json.loads(body)["details"][0]["loc"] == [loc], f"{name}: {body[:200]!r}"
    time.sleep(1)
    logged = "".join(guarded.output[before:])
    assert token not in logged and "Bearer" not in logged and "A" * 100 not in logged, logged
    lines = [line for line in logged.splitlines() if "malformed request" in line]
    assert len(lines) == 1, logged  # one line for the four, the rest counted in the next
    assert "Traceback" not in logged, logged


def test_json_in_another_encoding_than_utf8_is_refused(guarded):
    body = json.dumps(alarm("utf16")).encode("utf-16")
    answer = guarded.http.post("/api/v1/alarms", content=body, headers={
        **bearer("gateway"), "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["details"][0]["loc"] == ["body"]
    assert "UTF-8" in answer.json()["error"]


def test_an_id_with_a_control_character_is_refused_naming_it(guarded):
    time.sleep(2)
    for field, value in (("site_id", "a/b\u0000c"), ("alarm_id", "x\r\ny"),
                         ("device_id", "d\u001b[2J"), ("kind", "smoke\u0085")):
        answer = guarded.http.post("/api/v1/alarms", json={**alarm(f"ctl-{field}"),
                                                           field: value},
                                   headers=bearer("gateway"))
        assert answer.status_code == 422, (field, answer.text)
        detail = answer.json()["details"][0]
        assert field in detail["loc"] and "control characters" in detail["msg"], detail


def test_a_department_sees_reporters_phones_masked_and_an_admin_whole(guarded):
    time.sleep(3)
    phone = "13912345678"
    report = {**alarm("phone-1"), "site_id": "cq-zheyi-yuhang-hospital",
              "reporter": {"name": "王女士", "phone": phone}}
    assert guarded.http.post("/api/v1/alarms", json=report,
                             headers=bearer("gateway")).status_code == 202

    def police_incident():
        answer = guarded.http.get("/api/v1/incidents", headers=bearer("police"),
                                  params={"site_id": "cq-zheyi-yuhang-hospital"})
        if answer.status_code == 429:  # limited to 2/s: a slow machine polls past it
            return None
        return next((i for i in answer.json()["incidents"] if i["reporters"]), None)

    incident = guarded.wait_for(police_incident, 15, "the police's view of the incident")
    inc = incident["incident_id"]
    seen = [json.dumps(incident, ensure_ascii=False)]
    seen.append(guarded.http.get(f"/api/v1/incidents/{inc}", headers=bearer("police")).text)
    for fmt in ("json", "csv", "md", "html"):
        seen.append(guarded.http.get(f"/api/v1/incidents/{inc}/timeline",
                                     params={"format": fmt}, headers=bearer("police")).text)
    for text in seen:
        assert phone not in text, text[:300]
    assert all("139****5678" in text for text in seen[:3])  # the JSON forms carry reporters
    whole = guarded.http.get(f"/api/v1/incidents/{inc}", headers=bearer("admin")).json()
    assert whole["reporters"] == [{"name": "王女士", "phone": phone}]
