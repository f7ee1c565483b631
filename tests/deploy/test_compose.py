"""deploy/compose.yaml: valid against the Compose Specification's JSON Schema (with
check-jsonschema's vendored copy), and running what it promises: Kafka in KRaft mode, two
workers in one consumer group on their own ports, the monitoring, Prometheus scraping exactly
those workers. No Docker engine is needed or used."""

from __future__ import annotations

import json
import re

import yaml

from .conftest import DEPLOY
from .files import SETTINGS, compose, run, tool


def test_the_compose_file_is_valid_against_the_compose_specification(tmp_path):
    checker = tool("check-jsonschema")
    ok = run(checker, "--builtin-schema", "vendor.compose-spec", DEPLOY / "compose.yaml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # and the check is real: a misspelt service key is refused
    broken = compose()
    broken["services"]["whistle-1"]["enviroment"] = {"WHISTLE_PORT": "6066"}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    refused = run(checker, "--builtin-schema", "vendor.compose-spec", tmp_path / "compose.yaml")
    assert refused.returncode != 0 and "enviroment" in refused.stdout


def test_compose_runs_kraft_two_workers_in_one_group_and_the_monitoring():
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker",
                                                                         "controller"}
    assert "ZOOKEEPER" not in json.dumps(kafka).upper()
    workers = {n: s for n, s in services.items() if s.get("image", "").startswith("whistle:")
               and s.get("command") is None}
    assert sorted(workers) == ["whistle-1", "whistle-2"]
    envs = [w["environment"] for w in workers.values()]
    assert all(set(e) <= SETTINGS for e in envs), "every variable is a Whistle setting"
    assert len({e["WHISTLE_APP_ID"] for e in envs}) == 1, "one consumer group"
    assert len({e["WHISTLE_PORT"] for e in envs}) == 2, "each its own port"
    assert all(e["WHISTLE_STORE"] == "rocksdb://" for e in envs)
    for w, e in zip(workers.values(), envs, strict=True):
        assert w["ports"] == [f"127.0.0.1:{e['WHISTLE_PORT']}:{e['WHISTLE_PORT']}"]
        assert w["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"
        # the other worker forwards what this one holds to its service name and port
        assert e["WHISTLE_CANONICAL_URL"] == f"http://{w['hostname']}:{e['WHISTLE_PORT']}"
    assert {"kafka-topics", "sites-import", "kafka-exporter", "blackbox-exporter",
            "prometheus", "grafana"} <= set(services)
    # Prometheus scrapes exactly the two workers, at their ports
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
    jobs = {j["job_name"]: j for j in scrape["scrape_configs"]}
    targets = jobs["whistle"]["static_configs"][0]["targets"]
    assert sorted(targets) == sorted(f"{n}:{e['WHISTLE_PORT']}"
                                     for n, e in zip(workers, envs, strict=True))
    assert sorted(jobs["whistle-ready"]["static_configs"][0]["targets"]) == sorted(
        f"http://{t}/readyz" for t in targets)
    # every file compose mounts is in the repository
    for service in services.values():
        for volume in service.get("volumes", []):
            source = re.match(r"(\$\{[^}]*\}|[^:]+):", volume).group(1)
            if source.startswith("${"):  # ${VARIABLE:-default}
                source = source[2:-1].split(":-", 1)[1]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
