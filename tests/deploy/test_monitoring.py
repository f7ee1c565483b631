"""deploy/prometheus and deploy/grafana: promtool accepts the config and the rules, the rules'
unit tests pass with every alert seen firing, and Grafana is provisioned with the datasource the
dashboard uses, from where compose mounts it. (That every metric they name is exported by a
real worker is test_live.py's.)"""

from __future__ import annotations

import yaml

from .conftest import DEPLOY
from .files import compose, dashboard, run, tool


def test_promtool_accepts_the_config_and_the_rules():
    promtool = tool("promtool")
    config = run(promtool, "check", "config", "prometheus.yml", cwd=DEPLOY / "prometheus")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = run(promtool, "check", "rules", "rules.yml", cwd=DEPLOY / "prometheus")
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_the_alert_rules_pass_their_unit_tests():
    result = run(tool("promtool"), "test", "rules", "rules_test.yml", cwd=DEPLOY / "prometheus")
    assert result.returncode == 0, result.stdout + result.stderr
    # every alert has a test case
    alerts = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus" / "rules.yml")
                                                 .read_text("utf-8"))["groups"]
              for r in g["rules"] if "alert" in r}
    tested = {t["alertname"] for case in yaml.safe_load(
        (DEPLOY / "prometheus" / "rules_test.yml").read_text("utf-8"))["tests"]
        for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert alerts == tested, f"alerts never seen firing in a test: {alerts - tested}"


def test_grafana_provisions_the_datasource_the_dashboard_uses_from_where_compose_mounts():
    grafana = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((grafana / "datasources" / "prometheus.yml").read_text("utf-8"))
    uids = {d["uid"] for d in sources["datasources"]}
    board = dashboard()
    used = {p["datasource"]["uid"] for p in board["panels"]} | {
        t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]}
    assert used <= uids
    provider = yaml.safe_load((grafana / "dashboards" / "whistle.yml").read_text("utf-8"))
    path = provider["providers"][0]["options"]["path"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and board["uid"]
    for p in board["panels"]:
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
