"""Joint campaigns, pure: targets over a registry of 200 sites in 4 grids, the tasks a start
creates, findings, progress per department and grid, overdue by the clock passed in, and
errors naming the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from agents.logic.campaigns import (
    CampaignError,
    campaign_id_for,
    check,
    end,
    progress,
    record,
    start,
    targets,
)
from playbooks.campaigns import CAMPAIGNS, LoadedCampaign, load_campaigns, parse_campaign
from schemas.campaign import CampaignEnd, CampaignFinding, CampaignStart
from schemas.site import Site
from tests.conftest import T0

TYPES = ("fuel_station", "small_venue", "market", "residential", "village_house")
GRIDS = ("JYH-G1", "JYH-G2", "JYH-G3", "JYH-G4")
REGISTRY = [Site(site_id=f"s-{i:03d}", name=f"场所{i}", type=TYPES[i % 5], grid=GRIDS[i % 4])
            for i in range(200)]
SHIPPED = load_campaigns(CAMPAIGNS)
GAS = SHIPPED["gas-safety"]  # small_venue, market, residential: 120 sites; 5 steps
OIL = SHIPPED["refined-oil"]  # police twice


def campaign_of(targets_yaml: str, steps: str = "") -> LoadedCampaign:
    steps = steps or "  - {department: enforcement, action: 检查, within: 7d}\n"
    return parse_campaign(f"id: t\nversion: 1\ntitle: 测试\ntargets: {targets_yaml}\nsteps:\n"
                          f"{steps}", "t.yaml")


@pytest.mark.parametrize(("rule", "count", "first"), [
    ("{types: [fuel_station]}", 40, "s-000"),
    ("{grids: [JYH-G2]}", 50, "s-001"),
    ("{types: [small_venue, market], grids: [JYH-G2, JYH-G3]}", 40, "s-001"),
    ("{sites: [s-150, s-007]}", 2, "s-007"),                      # registry order, not the list's
    ("{sites: [s-001], types: [fuel_station]}", 41, "s-000"),     # listed, or of the type
    ("{sites: [s-000], types: [village_house]}", 41, "s-000"),    # listed and of no such type
    ("{types: [school]}", 0, None),
])
def test_targets_follow_types_grids_and_the_list(rule, count, first):
    found = targets(campaign_of(rule).playbook, REGISTRY)
    assert len(found) == count
    assert (found[0].site_id if found else None) == first
    assert [s.site_id for s in found] == sorted(s.site_id for s in found)


def test_a_site_the_registry_names_twice_is_a_target_once():
    found = targets(campaign_of("{sites: [s-003]}").playbook, REGISTRY + REGISTRY[:5])
    assert [s.site_id for s in found] == ["s-003"]


def test_a_start_creates_a_task_per_step_at_every_target_site_deterministically():
    campaign, sites = start(GAS, "cmp-gas", REGISTRY, "王科长", T0)
    assert len(sites) == 120 and len(campaign.sites) == 120
    ids = [t.task_id for s in sites for t in s.tasks]
    assert len(ids) == 120 * 5 == len(set(ids))
    assert sites[0].tasks[2].task_id == "cmp-gas.s-001.3"
    assert all(re.fullmatch(rf"cmp-gas\.{s.site_id}\.[1-5]", t.task_id)
               for s in sites for t in s.tasks)
    assert [t.due - T0 for t in sites[0].tasks] == [timedelta(days=d) for d in (14, 14, 30, 14, 30)]
    assert (campaign.playbook.id, campaign.playbook.content_hash) == ("gas-safety",
                                                                      GAS.content_hash)
    assert (campaign.status, campaign.started_by, campaign.started_at) == ("running", "王科长", T0)
    assert start(GAS, "cmp-gas", REGISTRY, "王科长", T0) == (campaign, sites)


def test_a_start_that_finds_no_site_names_targets():
    with pytest.raises(CampaignError) as caught:
        start(campaign_of("{types: [school]}"), "cmp-x", REGISTRY, "王科长", T0)
    assert caught.value.field == "targets"
    assert "names no registered site" in str(caught.value)


def test_sites_listed_but_not_registered_are_kept_on_the_campaign():
    campaign, sites = start(campaign_of("{sites: [s-004, gone-1, s-004, gone-2]}"), "c",
                            REGISTRY, "王科长", T0)
    assert [s.site_id for s in sites] == ["s-004"]
    assert campaign.unregistered == ["gone-1", "gone-2"]


def finding(site_id: str, department: str, outcome: str, n: int = 1, **over) -> CampaignFinding:
    return CampaignFinding(update_id=f"u-{n}", campaign_id="cmp-gas", site_id=site_id,
                           department=department, outcome=outcome, by="李队",
                           at=T0 + timedelta(days=n), **over)


def test_a_later_finding_replaces_an_earlier_one_on_that_departments_task():
    _, sites = start(GAS, "cmp-gas", REGISTRY, "王科长", T0)
    site = record(sites[0], finding("s-001", "enforcement", "rectification_ordered", 2,
                                    note="软管老化"))
    site = record(site, finding("s-001", "enforcement", "compliant", 9))
    task = next(t for t in site.tasks if t.department == "enforcement")
    assert (task.outcome, task.at, task.note, task.last_update_id) == (
        "compliant", T0 + timedelta(days=9), None, "u-9")
    assert [t.outcome for t in site.tasks] == [None, None, "compliant", None, None]
    assert sites[0].tasks[2].outcome is None        # the record given is left as it was


@pytest.mark.parametrize(("over", "field"), [
    ({"department": "power_supply"}, "department"),
    ({"site_id": "s-003"}, "site_id"),
    ({"task_id": "cmp-gas.s-001.1"}, "task_id"),       # gas_utility's task, not enforcement's
])
def test_a_finding_that_fits_no_task_names_the_field(over, field):
    _, sites = start(GAS, "cmp-gas", REGISTRY, "王科长", T0)
    data = {"site_id": "s-001", "department": "enforcement", **over}
    with pytest.raises(CampaignError) as caught:
        record(sites[0], finding(data.pop("site_id"), data.pop("department"), "fined", **data))
    assert caught.value.field == field


def test_a_department_with_two_steps_needs_the_task_id():
    _, sites = start(OIL, "cmp-gas", REGISTRY, "王科长", T0)
    with pytest.raises(CampaignError) as caught:
        record(sites[0], finding("s-000", "police", "compliant"))
    assert caught.value.field == "task_id" and "cmp-gas.s-000.5" in caught.value.message
    site = record(sites[0], finding("s-000", "police", "closed", task_id="cmp-gas.s-000.5"))
    assert [t.outcome for t in site.tasks] == [None, None, None, None, "closed", None]


def test_progress_per_department_and_grid_with_overdue_by_the_clock_passed_in():
    campaign, sites = start(GAS, "cmp-gas", REGISTRY, "王科长", T0)
    # every gas_utility task found, a tenth fined; enforcement done at every JYH-G1 site
    for i, site in enumerate(sites):
        site = record(site, finding(site.site_id, "gas_utility",
                                    "fined" if i % 10 == 0 else "compliant"))
        if site.grid == "JYH-G1":
            for n, dept in enumerate(("market_regulation", "enforcement", "property",
                                      "community"), start=2):
                site = record(site, finding(site.site_id, dept, "compliant", n))
        sites[i] = site
    early = progress(campaign, sites, T0 + timedelta(days=1))
    assert (early.sites, early.sites_done, early.tasks, early.done, early.overdue) == (
        120, 30, 600, 120 + 30 * 4, 0)
    assert early.outcomes == {"compliant": 12 * 9 + 30 * 4, "rectification_ordered": 0,
                              "fined": 12, "closed": 0}
    gas = early.departments[0]
    assert (gas.department, gas.tasks, gas.done, gas.outcomes["fined"]) == ("gas_utility", 120,
                                                                            120, 12)
    assert [d.department for d in early.departments] == [
        "gas_utility", "market_regulation", "enforcement", "property", "community"]
    assert [(g.grid, g.sites, g.sites_done, g.done) for g in early.grids] == [
        ("JYH-G1", 30, 30, 150), ("JYH-G2", 30, 0, 30), ("JYH-G3", 30, 0, 30),
        ("JYH-G4", 30, 0, 30)]
    # after 15 days the 14-day steps are late where not done: market_regulation and property
    late = progress(campaign, sites, T0 + timedelta(days=15))
    assert late.overdue == 2 * 90
    assert {d.department: d.overdue for d in late.departments} == {
        "gas_utility": 0, "market_regulation": 90, "enforcement": 0, "property": 90,
        "community": 0}
    assert [g.overdue for g in late.grids] == [0, 60, 60, 60]
    assert progress(campaign, sites, T0 + timedelta(days=31)).overdue == 4 * 90
    assert late.model_dump(mode="json")["at"] == (T0 + timedelta(days=15)).isoformat()


def test_an_ended_campaign_is_counted_as_at_its_end_and_takes_no_more_records():
    campaign, sites = start(GAS, "cmp-gas", REGISTRY, "王科长", T0)
    stop = CampaignEnd(update_id="u-end", campaign_id="cmp-gas", by="王科长",
                       at=T0 + timedelta(days=10))
    ended = end(campaign, stop)
    assert (ended.status, ended.ended_by, ended.ended_at) == ("ended", "王科长", stop.at)
    assert progress(ended, sites, T0 + timedelta(days=40)).overdue == 0
    assert progress(campaign, sites, T0 + timedelta(days=40)).overdue == 600
    for command in (stop, finding("s-001", "enforcement", "fined")):
        with pytest.raises(CampaignError, match="has ended") as caught:
            check(ended, command)
        assert caught.value.field == "campaign_id"
    again = CampaignStart(update_id="u-0", campaign_id="cmp-gas", playbook="gas-safety",
                          by="王科长", at=T0)
    with pytest.raises(CampaignError, match="exists already"):
        check(campaign, again)
    with pytest.raises(CampaignError, match="not 'cmp-gas'"):
        check(campaign, stop.model_copy(update={"campaign_id": "cmp-other"}))


def test_progress_refuses_a_site_of_another_campaign():
    campaign, sites = start(GAS, "cmp-gas", REGISTRY, "王科长", T0)
    _, others = start(GAS, "cmp-other", REGISTRY, "王科长", T0)
    with pytest.raises(CampaignError) as caught:
        progress(campaign, [*sites, others[0]], T0)
    assert caught.value.field == "campaign_id"


@pytest.mark.parametrize(("at", "expected"), [
    (T0, "cmp-gas-safety-20230516"),
    (T0.replace(hour=23, minute=59), "cmp-gas-safety-20230516"),
    (T0.replace(hour=0, minute=30) - timedelta(hours=1), "cmp-gas-safety-20230515"),
    (datetime(2023, 5, 16, 17, 0, tzinfo=UTC), "cmp-gas-safety-20230517"),  # 01:00 in China
])
def test_the_default_campaign_id_is_the_playbook_and_the_china_date(at, expected):
    assert campaign_id_for("gas-safety", at) == expected
