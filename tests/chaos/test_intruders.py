"""Intruders on the real stack: rate limits per token (429 with Retry-After), token guessing
limited by address, a body that is too large, and no token or secret in any log line."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest

from streams.broker import free_port
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
            "occurred_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


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
        tasks = guarded.http.get("/api/v1/tasks", headers=bearer("admin"),
                                 params={"department": "safety_office"}).json()["tasks"]
        return any(t.get("notice_cause") == "delivery_failed" for t in tasks)
    time.sleep(3)
    guarded.wait_for(delivery_failed, 30, "the failed delivery escalated")
    logged = "".join(guarded.output)
    assert "INFO" in logged or "WARNING" in logged, "the test must see the worker's log"
    for secret in (*TOKENS.values(), SECRET, "guess-0000000000000000000"):
        assert secret not in logged, f"{secret[:8]}... appears in the log"
    with httpx.Client(base_url=guarded.url) as client:  # and not in what the API says
        metrics = client.get("/metrics").text
    assert not any(s in metrics for s in (*TOKENS.values(), SECRET))
