"""The campaigns agent on Faust's test_context(): real agent, in-memory tables, no broker. A
start is applied once (a second start of the id is a conflict, nothing changes); an unknown
playbook, a start with no target site, a finding for a site or department the campaign lacks
are dead letters, and the waiting request hears the field; a replayed finding changes nothing;
an ended campaign takes no finding."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from schemas import topics
from schemas.campaign import CampaignEnd, CampaignFinding, CampaignStart, site_key
from schemas.codec import dump
from schemas.site import Site
from streams.app import build
from streams.settings import Settings
from tests.conftest import T0, FixedClock

SITES = [Site(site_id=f"c-{i:02d}", name=f"商铺{i}", type=("small_venue", "school")[i % 2],
              grid=f"G{i % 3}") for i in range(10)]  # 5 small venues: gas-safety's targets


@pytest.fixture
def whistle(tmp_path):
    w = build(Settings(broker="kafka://127.0.0.1:1", store="memory://", data=tmp_path),
              FixedClock(T0 + timedelta(minutes=1)))
    sent: list[tuple[str, str, dict]] = []

    async def record(topic: str, key: str, value: bytes):
        sent.append((topic, key, json.loads(value)))

    w.send = record
    w.sent = sent
    for site in SITES:
        w.registry.put_site(site)
    w.registry_reader.caught_up.set()
    w.app.finalize()
    w.app.flow_control.resume()
    yield w


async def put(w, agent, command) -> tuple[str, object]:
    """Send one record through the agent and return what it answered the waiting request."""
    waiter = asyncio.get_running_loop().create_future()
    w.waiters[command.update_id] = waiter
    await agent.put(dump(command), key=command.campaign_id.encode())
    return waiter.result()


def start(update_id: str, playbook: str = "gas-safety", campaign_id: str = "cmp-gas"):
    return CampaignStart(update_id=update_id, campaign_id=campaign_id, playbook=playbook,
                         by="王科长", at=T0)


def finding(update_id: str, site: str = "c-00", department: str = "gas_utility",
            outcome: str = "fined"):
    return CampaignFinding(update_id=update_id, campaign_id="cmp-gas", site_id=site,
                           department=department, outcome=outcome, by="李师傅", at=T0)


def letters(w) -> list[str]:
    return [v["reason"] for t, _, v in w.sent if t == topics.DLQ]


async def test_a_campaign_starts_once_and_takes_findings_until_it_ends(whistle):
    w = whistle
    agent = next(a for a in w.app.agents.values() if a.name == "campaigns")
    async with agent.test_context() as stage:
        outcome, (campaign, sites) = await put(w, stage, start("u1"))
        assert outcome == "ok" and campaign.sites == ["c-00", "c-02", "c-04", "c-06", "c-08"]
        assert sum(len(s.tasks) for s in sites) == 5 * 5
        assert await put(w, stage, start("u2")) == ("conflict", "campaign cmp-gas exists "
                                                                "already")
        assert w.tables.campaigns["cmp-gas"]["started_at"] == campaign.model_dump(
            mode="json")["started_at"]

        outcome, site = await put(w, stage, finding("f1"))
        assert outcome == "ok" and site.tasks[0].outcome == "fined"
        assert w.tables.campaign_sites[site_key("cmp-gas", "c-00")]["tasks"][0][
            "last_update_id"] == "f1"
        assert (await put(w, stage, finding("f1", outcome="compliant")))[1].tasks[0].outcome \
            == "fined", "a replayed finding changes nothing"
        assert await put(w, stage, finding("f2", site="c-01")) == (
            "refused", ("site_id", "'c-01' is no site of campaign cmp-gas"))
        outcome, (field, _) = await put(w, stage, finding("f3", department="police"))
        assert (outcome, field) == ("refused", "department")

        ended = CampaignEnd(update_id="e1", campaign_id="cmp-gas", by="王科长", at=T0)
        assert (await put(w, stage, ended))[1].status == "ended"
        assert (await put(w, stage, finding("f4")))[0] == "conflict"
        assert (await put(w, stage, ended.model_copy(update={"update_id": "e2"})))[0] == \
            "conflict"
    assert len(letters(w)) == 2 and all("cmp-gas" in r or "department" in r
                                        for r in letters(w))


async def test_an_unknown_playbook_or_no_target_site_is_a_dead_letter_naming_it(whistle):
    w = whistle
    agent = next(a for a in w.app.agents.values() if a.name == "campaigns")
    for site in SITES:
        w.registry.remove_site(site.site_id)
    async with agent.test_context() as stage:
        assert (await put(w, stage, start("u1", playbook="no-such")))[1][0] == "playbook"
        assert (await put(w, stage, start("u2")))[1][0] == "targets"
        unknown = finding("f1").model_copy(update={"campaign_id": "cmp-none"})
        assert await put(w, stage, unknown) == ("unknown", None)
    assert len(letters(w)) == 3 and "no-such" in letters(w)[0]
    assert dict(w.tables.campaigns.items()) == {} and dict(w.tables.campaign_sites.items()) == {}
