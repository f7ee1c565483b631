"""`whistle up` as an operator sees it: ready fast, 503 while the broker is unreachable, and
nothing left behind on SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from .conftest import Stack, alive, children_of, freeze


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_up_is_ready_quickly_and_stops_everything_it_started(tmp_path, sig):
    stack = Stack(tmp_path)
    try:
        assert stack.ready_after < 20, f"ready after {stack.ready_after:.1f} s"
        assert stack.url in stack.ready_line and "open mode" in stack.ready_line
        children = children_of(stack.process.pid)
        assert len(children) >= 2, "expected the broker and the worker under whistle up"
    finally:
        took = stack.stop(sig)
    assert stack.process.returncode == 0
    assert took < 10, f"stopping took {took:.1f} s"
    assert [pid for pid in children if alive(pid)] == []


def test_503_while_the_broker_is_frozen_then_accepted_again(tmp_path):
    stack = Stack(tmp_path, {"WHISTLE_INGEST_TIMEOUT": "2"})
    try:
        frozen_then_accepted(stack)
    finally:
        stack.stop()


def frozen_then_accepted(stack: Stack) -> None:
    alarm = {"alarm_id": "stall:1", "kind": "smoke", "site_id": "cq-xianna-factory",
             "occurred_at": "2024-05-01T10:00:00+08:00"}
    broker = stack.broker_pid()
    freeze(broker)
    try:
        r = stack.http.post("/api/v1/alarms", json=alarm)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert "broker" in r.json()["error"]
        stack.wait_for(lambda: stack.http.get("/readyz").status_code == 503, timeout=5,
                       what="/readyz to say not ready")
    finally:
        os.kill(broker, signal.SIGCONT)
    stack.wait_for(lambda: stack.http.get("/readyz").status_code == 200, timeout=15,
                   what="/readyz to recover")
    # the gateway retries with the same alarm_id until it gets 202, as a 503 asks it to
    stack.wait_for(lambda: stack.http.post("/api/v1/alarms", json=alarm).status_code == 202,
                   timeout=15, what="a 202 once the broker runs again")
    incidents = stack.wait_for(lambda: stack.http.get("/api/v1/incidents", params={
        "site_id": "cq-xianna-factory"}).json()["incidents"], timeout=15, what="the incident")
    assert len(incidents) == 1 and incidents[0]["alarm_ids"] == ["stall:1"]


def test_whistle_send_posts_one_alarm(stack):
    out = subprocess.run([sys.executable, "-m", "streams.cli", "send", "--kind", "smoke",
                          "--site", "jb-anking-restaurant-12", "--url", stack.url],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("202 ")
    incident = stack.wait_for(lambda: stack.http.get("/api/v1/incidents", params={
        "site_id": "jb-anking-restaurant-12"}).json()["incidents"], what="the incident")[0]
    assert incident["kind"] == "smoke"
    bad = subprocess.run([sys.executable, "-m", "streams.cli", "send", "--kind", "smoke",
                          "--site", "x", "--url", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "did not answer" in bad.stderr


def test_sends_a_json_file_of_alarms(stack, tmp_path):
    path = tmp_path / "alarms.json"
    path.write_text('[{"alarm_id": "file:1", "kind": "gas", "site_id": "lx-hongbei-b7-lamp",'
                    ' "occurred_at": "2024-06-01T09:00:00+08:00"}]', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "streams.cli", "send", "--file", str(path),
                          "--url", stack.url], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and '"file:1"' in out.stdout
    assert httpx.get(f"{stack.url}/healthz").status_code == 200


def test_a_busy_port_is_named_and_nothing_is_started(stack, tmp_path):
    port = stack.url.rsplit(":", 1)[1]
    out = subprocess.run([sys.executable, "-m", "streams.cli", "up", "--port", port, "--data",
                          str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"127.0.0.1:{port} is in use" in out.stderr


def test_broken_playbooks_are_refused_before_anything_starts(tmp_path):
    from tests.playbooks.test_check import BROKEN

    out = subprocess.run([sys.executable, "-m", "streams.cli", "up", "--port", "1",
                          "--playbooks", str(BROKEN), "--data", str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "bad-level.yaml:4: level:" in out.stderr
