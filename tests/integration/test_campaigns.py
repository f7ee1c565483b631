"""Joint campaigns (专项整治) on the real stack: 220 generated sites in 4 grids, 200 of them of
the types 燃气安全专项整治 (gas-safety) covers. A start (through `whistle campaign start`) gives
exactly those sites a task per step, each id once; the same id again is a 409, also after a
restart of `whistle up`, with the same tasks read back. Findings of every outcome, some by a
department's own token (another department's is a 403); progress per department and grid; the
CSV report with its BOM; bad input refused naming the field, with nothing half-created."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from playbooks.campaigns import CAMPAIGNS

from .conftest import Stack

pytestmark = pytest.mark.integration

CID = "cmp-gas-test"
GRIDS = ("CG-1", "CG-2", "CG-3", "CG-4")
GAS_TYPES = ("small_venue", "market", "residential")
STEPS = ("gas_utility", "market_regulation", "enforcement", "property", "community")
TOKENS = {"admin": "campaign-admin-token-01", "gas_utility": "campaign-gas-token-0001",
          "enforcement": "campaign-enf-token-0001", "police": "campaign-police-token-1"}
PEOPLE = {"admin": "王科长", "gas_utility": "李师傅", "enforcement": "赵队长",
          "police": "张警官"}  # the person each token names
LABELS = {"compliant": "合格", "rectification_ordered": "责令整改", "fined": "罚款",
          "closed": "关停取缔"}


def sites() -> list[dict]:
    """Every eleventh site is a school (no target: 20 of 220); the other 200 cycle through
    gas-safety's types."""
    return [{"site_id": f"cs-{i:03d}", "name": f"专项测试场所 {i:03d}",
             "type": "school" if i % 11 == 10 else GAS_TYPES[i % 3],
             "address": f"测试区 整治路{i}号", "grid": GRIDS[i % 4]} for i in range(220)]


TARGETS = {s["site_id"]: s["grid"] for s in sites() if s["type"] != "school"}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("campaigns")
    registry = tmp / "sites.yaml"
    registry.write_text(yaml.safe_dump(sites(), allow_unicode=True), encoding="utf-8")
    library = tmp / "campaigns"
    shutil.copytree(CAMPAIGNS, library)
    (library / "nowhere.yaml").write_text(  # lists only a site no registry holds
        "id: nowhere\nversion: 1\ntitle: 无处整治\ntargets: {sites: [ghost-site]}\nsteps:\n"
        "  - {department: enforcement, action: 检查, within: 7d}\n", encoding="utf-8")
    config = tmp / "whistle.yaml"
    config.write_text(yaml.safe_dump({"tokens": [
        {"role": "admin", "token": TOKENS["admin"], "name": PEOPLE["admin"]},
        *({"role": "department", "department": d, "token": TOKENS[d], "name": PEOPLE[d]}
          for d in ("gas_utility", "enforcement", "police"))]}, allow_unicode=True),
        encoding="utf-8")
    return {"tmp": tmp, "sites": registry, "campaigns": library, "config": config}


def start_stack(files: dict[str, Path], *args: str) -> Stack:
    return Stack(files["tmp"], {"WHISTLE_CAMPAIGNS": str(files["campaigns"]),
                                "WHISTLE_RATE_BURST": "1000"},
                 "--config", str(files["config"]), *args, data=files["tmp"] / "data")


def refused(answer, status: int) -> list:
    assert answer.status_code == status, answer.text
    return answer.json()["details"][0]["loc"]


def all_sites(stack: Stack, **query) -> list[dict]:
    """Every site record, a page of 50 at a time."""
    found, cursor = [], None
    while True:
        page = stack.http.get(f"/api/v1/campaigns/{CID}/sites", headers=auth("admin"), params={
            **query, "limit": 50, **({"cursor": cursor} if cursor else {})}).json()
        found += page["sites"]
        cursor = page.get("next_cursor")
        if cursor is None:
            return found


# (site, department, outcome, whose token): one site done by all five departments
FINDINGS = [("cs-000", d, "compliant", "admin") for d in STEPS] + [
    ("cs-001", "gas_utility", "rectification_ordered", "gas_utility"),
    ("cs-002", "gas_utility", "compliant", "gas_utility"),
    ("cs-003", "enforcement", "fined", "enforcement"),
    ("cs-004", "enforcement", "closed", "enforcement"),
    ("cs-005", "market_regulation", "fined", "admin"),
    ("cs-006", "property", "closed", "admin"),
]


def test_a_campaign_is_created_once_and_its_findings_add_up(files):
    first = start_stack(files, "--sites", str(files["sites"]))
    try:
        http, admin = first.http, auth("admin")
        # bad starts: refused naming the field, nothing created
        assert refused(http.post("/api/v1/campaigns", headers=admin,
                                 json={"playbook": "no-such", "campaign_id": "cmp-bad"}),
                       422) == ["playbook"]
        assert refused(http.post("/api/v1/campaigns", headers=admin,
                                 json={"playbook": "nowhere", "campaign_id": "cmp-bad"}),
                       422) == ["targets"]
        assert http.get("/api/v1/campaigns", headers=admin).json() == {"campaigns": []}
        assert http.get("/api/v1/campaigns/cmp-bad", headers=admin).status_code == 404
        playbooks = {p["id"]: p for p in http.get("/api/v1/campaign-playbooks",
                                                  headers=admin).json()["playbooks"]}
        assert (playbooks["gas-safety"]["sites"], playbooks["nowhere"]["sites"]) == (200, 0)

        cli = [sys.executable, "-m", "streams.cli", "campaign", "start", "gas-safety", "--id",
               CID, "--json", "--url", first.url, "--token", TOKENS["admin"]]
        made = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        started = json.loads(made.stdout)
        campaign, progress = started["campaign"], started["progress"]
        assert sorted(campaign["sites"]) == sorted(TARGETS) and len(campaign["sites"]) == 200
        assert (campaign["started_by"], campaign["status"]) == ("王科长", "running")
        assert (progress["sites"], progress["tasks"], progress["done"]) == (200, 1000, 0)
        records = all_sites(first)
        tasks = [t["task_id"] for s in records for t in s["tasks"]]
        assert len(records) == 200 and len(tasks) == 1000 == len(set(tasks))
        assert [s["site_id"] for s in records] == campaign["sites"], "the campaign's order"

        again = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "409" in again.stderr
        assert "  campaign_id: exists" in again.stderr, again.stderr

        for site, department, outcome, role in FINDINGS:
            answer = http.post(f"/api/v1/campaigns/{CID}/findings", headers=auth(role), json={
                "site_id": site, "department": department, "outcome": outcome,
                "note": f"{LABELS[outcome]}：检查记录"})
            assert answer.status_code == 200, answer.text
            [task] = [t for t in answer.json()["tasks"] if t["department"] == department]
            assert (task["outcome"], task["by"]) == (outcome, PEOPLE[role])
        bad = [  # (token, body, status, the field named)
            ("gas_utility", {"site_id": "cs-001", "department": "enforcement",
                             "outcome": "fined"}, 403, ["department"]),
            ("admin", {"site_id": "cs-001", "department": "no_such_dept",
                       "outcome": "fined"}, 422, ["department"]),
            ("admin", {"site_id": "cs-001", "department": "police", "outcome": "fined"}, 422,
             ["department"]),
            ("admin", {"site_id": "cs-010", "department": "enforcement",
                       "outcome": "fined"}, 422, ["site_id"]),  # a school: not a target
            ("admin", {"site_id": "nowhere-1", "department": "enforcement",
                       "outcome": "fined"}, 422, ["site_id"]),
            ("admin", {"site_id": "cs-001", "department": "enforcement",
                       "outcome": "warned"}, 422, ["outcome"]),
        ]
        for role, body, status, loc in bad:
            answer = http.post(f"/api/v1/campaigns/{CID}/findings", headers=auth(role),
                               json={**body, "by": "某人"})
            assert refused(answer, status) == loc, body
        # the police have no step: they do not see it; the gas utility does
        assert http.get(f"/api/v1/campaigns/{CID}", headers=auth("police")).status_code == 403
        assert http.get("/api/v1/campaigns", headers=auth("police")).json()["campaigns"] == []
        assert [c["campaign_id"] for c in http.get(
            "/api/v1/campaigns", headers=auth("gas_utility")).json()["campaigns"]] == [CID]

        shown = http.get(f"/api/v1/campaigns/{CID}", headers=auth("gas_utility")).json()
        check_progress(shown["progress"])
        done = all_sites(first, department="gas_utility", state="done")
        assert sorted(s["site_id"] for s in done) == ["cs-000", "cs-001", "cs-002"]
        assert len(all_sites(first, grid="CG-2")) == sum(g == "CG-2" for g in TARGETS.values())
        assert [s["site_id"] for s in all_sites(first, state="done")] == ["cs-000"]

        report = http.get(f"/api/v1/campaigns/{CID}/report", headers=admin,
                          params={"format": "csv"})
        assert report.status_code == 200
        assert report.headers["content-type"] == "text/csv; charset=utf-8"
        assert report.headers["content-disposition"].startswith("attachment;")
        assert report.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
        counted = Counter(r["结果"] for r in rows)
        wanted = Counter(LABELS[o] for _, _, o, _ in FINDINGS)
        assert {k: counted[k] for k in LABELS.values()} == {k: wanted[k] for k in LABELS.values()}
        assert len(rows) == 1000 and counted["未检查"] == 1000 - len(FINDINGS)
        page = http.get(f"/api/v1/campaigns/{CID}/report", headers=admin).text
        assert "燃气安全专项整治" in page and "专项测试场所 000" in page
        assert first.stop() < 15 and first.process.returncode == 0
    finally:
        first.stop()

    second = start_stack(files)  # the same data directory: the registry and tables are there
    try:
        http, admin = second.http, auth("admin")
        again = http.post("/api/v1/campaigns", headers=admin,
                          json={"playbook": "gas-safety", "campaign_id": CID})
        assert refused(again, 409) == ["campaign_id"], "created once, also after a restart"
        [listed] = http.get("/api/v1/campaigns", headers=admin).json()["campaigns"]
        assert (listed["campaign_id"], listed["tasks"], listed["done"]) == (
            CID, 1000, len(FINDINGS))
        check_progress(http.get(f"/api/v1/campaigns/{CID}", headers=admin).json()["progress"])
        tasks = [t["task_id"] for s in all_sites(second) for t in s["tasks"]]
        assert len(tasks) == 1000 == len(set(tasks))

        ended = http.post(f"/api/v1/campaigns/{CID}/end", headers=admin, json={})
        assert ended.status_code == 200 and ended.json()["campaign"]["status"] == "ended"
        late = http.post(f"/api/v1/campaigns/{CID}/findings", headers=admin, json={
            "site_id": "cs-001", "department": "enforcement", "outcome": "fined"})
        assert refused(late, 409) == ["status"]
        assert refused(http.post(f"/api/v1/campaigns/{CID}/end", headers=admin, json={}),
                       409) == ["status"]
    finally:
        second.stop()


def check_progress(progress: dict) -> None:
    """Per department and per grid, as FINDINGS make them."""
    by_department = {d["department"]: d for d in progress["departments"]}
    assert list(by_department) == list(STEPS)
    for department in STEPS:
        mine = Counter(o for _, d, o, _ in FINDINGS if d == department)
        shown = by_department[department]
        assert (shown["tasks"], shown["done"], shown["overdue"]) == (200, sum(mine.values()), 0)
        assert {o: n for o, n in shown["outcomes"].items() if n} == dict(mine)
    grids = {g["grid"]: g for g in progress["grids"]}
    assert list(grids) == list(GRIDS)
    for grid in GRIDS:
        count = sum(g == grid for g in TARGETS.values())
        found = sum(TARGETS[s] == grid for s, _, _, _ in FINDINGS)
        assert (grids[grid]["sites"], grids[grid]["tasks"], grids[grid]["done"]) == (
            count, count * 5, found)
        assert grids[grid]["sites_done"] == (1 if grid == TARGETS["cs-000"] else 0)
    assert (progress["sites_done"], progress["done"]) == (1, len(FINDINGS))
