"""`whistle bench --peer alertmanager`: the route tree equivalent to the playbooks, Debian's
Alertmanager running it, and a tiny comparison against a real embedded broker and worker whose
department webhooks point at the bench's receiver."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from playbooks import load_playbooks
from playbooks.departments import load_departments
from streams.bench.alertmanager import (
    Alertmanager,
    PeerError,
    alertmanager_config,
    first_departments,
)
from streams.bench.peer import SECRET, Receiver, compare, rows, webhooks_env
from streams.bench.run import start_worker
from streams.kafka.broker import EmbeddedBroker
from streams.procs import stop_process
from streams.settings import Settings

DEPARTMENTS = sorted(load_departments(Settings().departments).by_id())
PLAYBOOKS = load_playbooks(Settings().playbooks, set(DEPARTMENTS))


def routes_by_kind(config: dict) -> dict[str | None, list[str]]:
    """kind (None: the catch-all) -> the receivers its route sends to."""
    out = {}
    for route in config["route"]["routes"]:
        kind = route["matchers"][0].split("=", 1)[1].strip('"') if "matchers" in route else None
        out[kind] = [child["receiver"] for child in route.get("routes", [])]
    return out


def test_the_route_tree_sends_each_kind_to_the_departments_its_playbook_tasks():
    config = alertmanager_config(PLAYBOOKS, DEPARTMENTS, "http://127.0.0.1:9/")
    by_kind = routes_by_kind(config)
    assert by_kind["fire_report"] == ["fire_brigade", "grid_worker"]  # not the lead: after verify
    assert by_kind[None] == ["safety_office", "grid_worker"]          # the fallback playbook's
    assert list(by_kind)[-1] is None                                  # tried last
    assert set(by_kind) == {*PLAYBOOKS.kinds_named, None}
    for kind in PLAYBOOKS.kinds_named:
        assert by_kind[kind] == first_departments(PLAYBOOKS, kind)
    root = config["route"]
    assert (root["receiver"], root["group_by"], root["group_wait"]) == ("null", ["site_id"], "0s")
    assert all(c["continue"] for r in root["routes"] for c in r.get("routes", []))
    assert not any(r.get("continue") for r in root["routes"])  # one kind route wins
    hooks = {r["name"]: r.get("webhook_configs") for r in config["receivers"]}
    assert hooks.pop("null") is None
    assert hooks == {d: [{"url": f"http://127.0.0.1:9/alertmanager/{d}", "send_resolved": False}]
                     for d in DEPARTMENTS}


def test_a_department_without_a_receiver_is_refused():
    with pytest.raises(PeerError, match="grid_worker"):
        alertmanager_config(PLAYBOOKS, [d for d in DEPARTMENTS if d != "grid_worker"],
                            "http://127.0.0.1:9")


def test_webhooks_env_points_each_department_at_the_receiver(monkeypatch):
    env = webhooks_env("http://127.0.0.1:9/", ["police", "fire_brigade"])
    monkeypatch.setenv("WHISTLE_WEBHOOKS", env["WHISTLE_WEBHOOKS"])
    hooks = Settings().access().webhooks
    assert {t: str(h.url) for t, h in hooks.items()} == {
        "police": "http://127.0.0.1:9/whistle/police",
        "fire_brigade": "http://127.0.0.1:9/whistle/fire_brigade"}
    assert hooks["police"].secret.get_secret_value() == SECRET
    assert hooks["police"].timeout.total_seconds() == 2.0
    with pytest.raises(ValueError):
        webhooks_env("http://127.0.0.1:9", ["police"], timeout="10ms")  # below Whistle's 50ms


def test_a_missing_alertmanager_names_the_debian_package(tmp_path):
    am = Alertmanager({}, tmp_path, binary=tmp_path / "prometheus-alertmanager")
    with pytest.raises(PeerError, match="apt-get install prometheus-alertmanager"):
        am.start()


def test_alertmanager_refuses_a_zero_group_interval_and_says_so(tmp_path):
    config = alertmanager_config(PLAYBOOKS, DEPARTMENTS, "http://127.0.0.1:9",
                                 group_interval="0s")
    with pytest.raises(PeerError, match="group_interval cannot be zero"):
        Alertmanager(config, tmp_path).start(timeout=10)


@pytest.mark.integration
@pytest.mark.timeout(150)
async def test_a_tiny_comparison_gets_every_webhook_from_both_sides(tmp_path):
    started = time.monotonic()
    receiver = await Receiver(secret=SECRET).start()
    broker = EmbeddedBroker(tmp_path / "broker").start()
    worker = am = None
    try:
        worker, url = await asyncio.to_thread(
            start_worker, broker.url, tmp_path, webhooks_env(receiver.url, DEPARTMENTS))
        am = Alertmanager(alertmanager_config(PLAYBOOKS, DEPARTMENTS, receiver.url),
                          tmp_path / "alertmanager")
        await asyncio.to_thread(am.start)
        f = await compare(url, am.url, receiver, alarms=20, rate=20.0, seconds=1.0,
                          settle=0.5)
        am.stop()

        # a tree that forgets the grid worker is caught by the probes, not measured
        wrong = alertmanager_config(PLAYBOOKS, DEPARTMENTS, receiver.url)
        fire = next(r for r in wrong["route"]["routes"]
                    if r.get("matchers") == ['kind="fire_report"'])
        fire["routes"] = [c for c in fire["routes"] if c["receiver"] != "grid_worker"]
        am = Alertmanager(wrong, tmp_path / "wrong")
        await asyncio.to_thread(am.start)
        with pytest.raises(PeerError, match="grid_worker from Whistle but fire_brigade from "
                                            "Alertmanager"):
            await compare(url, am.url, receiver, alarms=1, rate=1.0, seconds=1.0, settle=0)
    finally:
        if am is not None:
            am.stop()
        if worker is not None:
            await asyncio.to_thread(stop_process, worker, 6.0)
        broker.stop()
        await receiver.stop()

    # the probes: both sides reach the departments the playbook tasks, once each
    assert f["departments"] == first_departments(PLAYBOOKS, "fire_report")
    assert f["webhooks_per_alarm"] == {"whistle": 2, "alertmanager": 2}
    for side in ("whistle", "alertmanager"):
        t, lat = f["throughput"][side], f["latency"][side]
        assert t["webhooks_seen"] == t["webhooks_expected"] == 40, side
        assert t["alarms_per_s"] > 0 and t["elapsed_s"] > 0, side
        assert lat["alarms"] == lat["alarms_answered"] == 20, side
        assert lat["webhooks_seen"] == lat["webhooks_expected"] == 40, side
        assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"], side
    t, lat = f["throughput"], f["latency"]
    assert f["ratios"] == {
        "throughput": round(t["whistle"]["alarms_per_s"] / t["alertmanager"]["alarms_per_s"], 3),
        "p50": round(lat["whistle"]["p50_ms"] / lat["alertmanager"]["p50_ms"], 3)}
    assert f["met"] == {"throughput": f["ratios"]["throughput"] >= 1.0,
                        "p50": f["ratios"]["p50"] <= 3.0}
    assert f["refused"] == 0  # every Whistle webhook carried a good signature
    assert len(f["latencies_ms"]["whistle"]) == len(f["latencies_ms"]["alertmanager"]) == 20
    json.dumps(f)  # what --json writes

    table = "\n".join(rows(f))
    for measure in ("whistle", "alertmanager", "throughput, 20 alarms", "p50", "p99",
                    "40/40", ">= 1x alertmanager", "<= 3x alertmanager"):
        assert measure in table, f"{measure!r} missing from the table:\n{table}"
    assert time.monotonic() - started < 60
