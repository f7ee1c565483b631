"""A worker killed (SIGKILL) and started again on its URL takes its place in the consumer group
back at once, its partitions with it (static membership, streams.runtime.membership); a worker
stopped (SIGTERM) leaves the group, so one started on another URL does not wait for it.

Both with a session timeout of 45 s: a worker joining as a stranger while a member the broker
still counts as alive holds partitions is not given any until that member's session runs out
(`/readyz` says "consuming" until then), so either readiness within a third of it shows the
broker did not wait. Processing is checked too: an alarm posted after each start has its
incident.

    .venv/bin/pytest -s tests/integration/test_restart.py   # prints the `restart:` line
"""

from __future__ import annotations

import signal
import uuid
from datetime import UTC, datetime

import pytest

from streams.kafka.broker import free_port

from .workers import Worker, demo_broker, wait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SESSION = 45.0  # WHISTLE_REBALANCE_TIMEOUT, the session timeout too


def handled(worker: Worker) -> str:
    """Posts a fire report and returns the incident it opened, once the worker shows it."""
    alarm = {"alarm_id": f"restart-{uuid.uuid4().hex[:8]}", "kind": "fire_report",
             "signal": "alarm", "site_id": "jyh-yinfeng-lab-3",
             "occurred_at": datetime.now(UTC).isoformat(), "reporter": {"name": "企业值班人员"}}
    assert worker.http.post("/api/v1/alarms", json=alarm).status_code == 202

    def opened():
        found = worker.http.get("/api/v1/incidents").json()["incidents"]
        return next((i["incident_id"] for i in found if alarm["alarm_id"] in i["alarm_ids"]),
                    None)
    return wait(opened, 30, f"an incident for {alarm['alarm_id']}")


def test_a_killed_worker_takes_its_place_back_and_a_stopped_one_leaves(tmp_path):
    env = {"WHISTLE_REBALANCE_TIMEOUT": str(SESSION)}
    with demo_broker(tmp_path) as broker:
        port = free_port()
        worker = Worker(broker.url, None, tmp_path, port, env)
        try:
            handled(worker)
            worker.kill()
            worker = Worker(broker.url, None, tmp_path, port, env)  # its URL: its place
            killed = worker.ready_after
            assert killed < SESSION / 3, (
                f"ready {killed:.1f} s after a kill: the broker waited for the dead member")
            handled(worker)

            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(timeout=30) == 0, worker.output()[-3000:]
            worker.kill()
            worker = Worker(broker.url, None, tmp_path, free_port(), env)  # another URL
            stopped = worker.ready_after
            assert stopped < SESSION / 3, (
                f"ready {stopped:.1f} s after a stop: the stopped worker had not left")
            handled(worker)
        finally:
            worker.kill()
    print(f"\nrestart: ready {killed:.1f} s after a kill on the same URL, {stopped:.1f} s "
          f"after a stop on another (session timeout {SESSION:.0f} s)")
