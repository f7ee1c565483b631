"""deploy/ against a live worker (`whistle up` on the embedded broker, see conftest.py's
`live`): every metric the dashboard and the alerts name is one the worker exports, every topic
the worker made is one deploy/ creates, and the message sizes deploy/README.md's sizing rests
on are the ones measured now."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest
import yaml

from streams.kafka.broker import free_port

from .conftest import DEPLOY, HEARTBEATS, exported_names, grouped_by_topic
from .files import dockerfile, k8s_topics

pytestmark = pytest.mark.integration

# the other exporters' metrics the alert rules use: Prometheus' own, kafka-exporter's, blackbox's
NOT_WHISTLES = {"up", "kafka_consumergroup_lag", "probe_success"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and",
    "or", "unless", "inf", "nan",
    # functions and aggregations used without a following "(" never occur, but be safe
    "sum", "count", "rate", "increase", "histogram_quantile", "absent", "sort_desc", "max",
    "min", "avg"}


def sizing():
    spec = importlib.util.spec_from_file_location("sizing", DEPLOY / "sizing.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sizing"] = module
    spec.loader.exec_module(module)
    return module


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers outside label matchers, ranges,
    grouping clauses and strings that are neither functions nor keywords."""
    expr = re.sub(r'"[^"]*"', "", expr)                      # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                    # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                   # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)                        # Grafana variables
    expr = re.sub(r"(?<![\w:])\d+(\.\d+)?(ms|[smhdwy])?", "", expr)  # numbers, durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[m.end():].lstrip().startswith("("):          # a function or aggregation
            continue
        if m.group(0).lower() not in PROMQL_WORDS:
            names.add(m.group(0))
    return names


def test_metric_names_are_read_from_promql():
    assert metric_names('histogram_quantile(0.95, sum by (target, le) '
                        '(rate(whistle_webhook_seconds_bucket{job="whistle"}[$__rate_interval])))'
                        ) == {"whistle_webhook_seconds_bucket"}
    assert metric_names("sum(x_total offset 10m) unless absent(up{a=\"b\"}) * 60") == {
        "x_total", "up"}


def test_every_dashboard_query_names_only_metrics_the_worker_exports(live):
    sampled, exported = exported_names(live.metrics)
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "whistle.json").read_text("utf-8"))
    named = {n for p in board["panels"] for t in p["targets"] for n in metric_names(t["expr"])}
    assert named, "no metric found in the dashboard"
    assert named <= exported, f"not exported by a worker: {sorted(named - exported)}"
    # the scenario made most of them real series, not only declared families
    assert {"whistle_alarms_accepted_total", "whistle_alarm_to_task_seconds_bucket",
            "whistle_tasks_dispatched_total", "whistle_task_updates_total",
            "whistle_webhook_attempts_total", "whistle_webhook_seconds_bucket",
            "whistle_stream_clients", "whistle_dead_letters_total",
            "whistle_alarms_rejected_total", "whistle_playbook_reloads_total"} <= sampled
    # and every metric the worker exports has a panel
    families = {n.removesuffix("_bucket") for n in exported
                if not n.endswith(("_sum", "_count"))}
    shown = {n.removesuffix("_bucket") for n in named if not n.endswith(("_sum", "_count"))}
    assert families <= shown, f"exported but on no panel: {sorted(families - shown)}"


def test_every_alert_rule_names_only_metrics_that_exist(live):
    _, exported = exported_names(live.metrics)
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text("utf-8"))
    named = {n for g in rules["groups"] for r in g["rules"] for n in metric_names(r["expr"])}
    whistles = {n for n in named if n.startswith("whistle_")}
    assert whistles and whistles <= exported, sorted(whistles - exported)
    assert named - whistles <= NOT_WHISTLES, sorted(named - whistles - NOT_WHISTLES)


def test_deploy_creates_every_topic_the_live_worker_made_with_its_partitioning(live):
    made = set(live.topics)
    created = set(k8s_topics())
    assert made == created, {"made, not in deploy": made - created,
                             "in deploy, never made": created - made}


def test_the_sizing_constants_are_the_sizes_measured_now(live):
    s = sizing()
    per_beat = {t: n / HEARTBEATS for t, n in live.heartbeat_bytes.items()}
    assert per_beat == pytest.approx(s.HEARTBEAT, rel=0.15)
    written = grouped_by_topic(live.incident_bytes)
    written.pop("whistle-playbook-versions-changelog", None)  # once per playbook version
    assert written == pytest.approx(s.INCIDENT, rel=0.15)
    kept = {t: n for t, n in grouped_by_topic(live.incident_kept).items() if t in s.INCIDENT_KEPT}
    assert kept == pytest.approx(s.INCIDENT_KEPT, rel=0.15)
    assert len(live.tasks) == 6 and live.incident["status"] == "closed"
    registry = [n for records in live.topics["whistle.registry"].values() for _, n in records]
    assert sum(registry) / len(registry) == pytest.approx(s.REGISTRY_RECORD, rel=0.25)


def test_the_readme_sizing_is_what_the_sizing_script_prints():
    s = sizing()
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    table = s.render([s.Load(10_000), s.Load(500_000)])
    assert table in readme, "deploy/README.md: paste `python deploy/sizing.py`'s table"
    for load in (s.Load(10_000), s.Load(500_000)):
        assert s.arithmetic(load) in readme, f"deploy/README.md: the arithmetic for {load}"
    assert s.rate_arithmetic(1_000) in readme, "deploy/README.md: the workers for 1,000 alarms/s"
    assert s.rate_plan(1_000).workers > s.rate_plan(100).workers


def test_the_registry_memory_per_device_is_as_sized():
    import tracemalloc

    from agents.logic.locate import Registry
    from schemas.site import Device, Site

    n = 20_000
    tracemalloc.start()
    try:
        registry = Registry()
        for i in range(n // 50):
            registry.put_site(Site.model_validate(
                {"site_id": f"site-{i:06d}", "name": f"小区{i}号楼", "type": "residential",
                 "address": f"某街道某路{i}号", "grid": f"G-{i % 300}",
                 "lat": 36.6 + i * 1e-5, "lon": 117.3 + i * 1e-5}))
        for i in range(n):
            registry.put_device(Device.model_validate(
                {"device_id": f"smk-{i:07d}", "site_id": f"site-{i // 50:06d}", "kind": "smoke",
                 "heartbeat": "1h"}))
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used / n == pytest.approx(sizing().REGISTRY_MEMORY, rel=0.25)


def test_the_image_healthcheck_command_answers_for_a_live_worker_only(live):
    health = next(a for i, a in dockerfile() if i == "HEALTHCHECK")
    command = json.loads(health[health.index("CMD") + 3:].strip())
    assert command[0] == "python"
    argv = [sys.executable, *command[1:]]
    ok = subprocess.run(argv, env={"WHISTLE_PORT": str(live.stack.port)}, timeout=10)
    assert ok.returncode == 0
    down = subprocess.run(argv, env={"WHISTLE_PORT": str(free_port())}, timeout=10,
                          capture_output=True)
    assert down.returncode != 0


def test_the_stream_history_memory_per_event_is_as_sized():
    import tracemalloc

    from schemas.codec import dump
    from streams.notify.feed import DepartmentLog, _task
    from tests.agents.logic.test_deadlines import Desk

    planned = list(Desk().tasks.values())  # the lab fire's tasks
    records = [dump(t.model_copy(update={"task_id": f"{t.task_id}-{i}"}))
               for i in range(1000) for t in planned]
    tracemalloc.start()
    try:
        log = DepartmentLog(partitions=1, limit=len(records))
        for offset, record in enumerate(records):
            log.add(0, offset, _task(record, "whistle.tasks.police"), record)  # as read
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(log.events) == len(records)
    assert used / len(records) == pytest.approx(sizing().STREAM_EVENT, rel=0.25)
