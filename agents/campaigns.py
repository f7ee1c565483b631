"""Campaigns agent: `whistle.campaigns` (key: campaign_id) -> the `campaigns` and
`campaign_sites` tables, and the answer to the request waiting for it (专项整治).

A start makes the campaign and one record per target site (`agents.logic.campaigns.start`),
once: a start of an id that exists changes nothing and is answered as a conflict, also after a
restart (the tables come back from their changelogs). A finding rewrites one site's record; a
finding replayed (the task's `last_update_id`) changes nothing. An end ends the campaign.
Every record this agent cannot apply (an unknown campaign or playbook, no target site, a site
or department the campaign does not have) goes to the dead-letter topic with why, and the
waiting request hears which field is wrong.

    >>> w.tables.campaign_sites["cmp-gas-safety-20260301/jb-wenshao-jiayuan"]["tasks"][0]
    {'task_id': 'cmp-gas-safety-20260301.jb-wenshao-jiayuan.1', 'department': 'gas_utility', ...}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.logic.campaigns import CampaignError, end, record, start
from schemas.campaign import (
    Campaign,
    CampaignEnd,
    CampaignFinding,
    CampaignMessage,
    CampaignSite,
    CampaignStart,
    site_key,
)

if TYPE_CHECKING:
    from streams.worker import Whistle

__all__ = ["register"]


async def handle(w: Whistle, message: CampaignMessage, raw: Any) -> None:
    command = message.root
    if isinstance(command, CampaignStart):
        await _start(w, command, raw)
        return
    stored = w.tables.campaigns.get(command.campaign_id)
    if stored is None:
        await w.dead_letter(raw, f"unknown campaign {command.campaign_id}")
        w.answer(command.update_id, "unknown", None)
        return
    campaign = Campaign.model_validate(stored)
    if isinstance(command, CampaignFinding):
        await _finding(w, campaign, command, raw)
    else:
        _end(w, campaign, command)


async def _refuse(w: Whistle, raw: Any, update_id: str, error: CampaignError) -> None:
    await w.dead_letter(raw, str(error))
    w.answer(update_id, "refused", (error.field, error.message))


async def _start(w: Whistle, command: CampaignStart, raw: Any) -> None:
    if w.tables.campaigns.get(command.campaign_id) is not None:
        w.answer(command.update_id, "conflict", f"campaign {command.campaign_id} exists "
                                                f"already")
        return
    loaded = w.campaign_playbooks.get(command.playbook)
    if loaded is None:
        await _refuse(w, raw, command.update_id, CampaignError(
            "playbook", f"no campaign playbook {command.playbook!r}"))
        return
    await w.registry_read()
    try:
        campaign, sites = start(loaded, command.campaign_id, list(w.registry.sites()),
                                command.by, command.at)
    except CampaignError as exc:
        await _refuse(w, raw, command.update_id, exc)
        return
    for site in sites:
        w.tables.campaign_sites[site_key(campaign.campaign_id, site.site_id)] = \
            site.model_dump(mode="json")
    # last: a start stopped half-way left no campaign, and its replay writes the same records
    w.tables.campaigns[campaign.campaign_id] = campaign.model_dump(mode="json")
    w.answer(command.update_id, "ok", (campaign, sites))


async def _finding(w: Whistle, campaign: Campaign, finding: CampaignFinding, raw: Any) -> None:
    if campaign.status != "running":
        w.answer(finding.update_id, "conflict", f"campaign {campaign.campaign_id} has ended")
        return
    key = site_key(campaign.campaign_id, finding.site_id)
    stored = w.tables.campaign_sites.get(key) if finding.site_id in campaign.sites else None
    if stored is None:
        await _refuse(w, raw, finding.update_id, CampaignError(
            "site_id", f"{finding.site_id!r} is no site of campaign {campaign.campaign_id}"))
        return
    site = CampaignSite.model_validate(stored)
    if any(t.last_update_id == finding.update_id for t in site.tasks):  # a replay
        w.answer(finding.update_id, "ok", site)
        return
    try:
        site = record(site, finding)
    except CampaignError as exc:
        await _refuse(w, raw, finding.update_id, exc)
        return
    w.tables.campaign_sites[key] = site.model_dump(mode="json")
    w.answer(finding.update_id, "ok", site)


def _end(w: Whistle, campaign: Campaign, command: CampaignEnd) -> None:
    try:
        ended = end(campaign, command)
    except CampaignError as exc:  # ended already
        w.answer(command.update_id, "conflict", exc.message)
        return
    w.tables.campaigns[campaign.campaign_id] = ended.model_dump(mode="json")
    w.answer(command.update_id, "ok", ended)


def register(w: Whistle) -> None:
    w.stage(w.topics.campaigns, "campaigns", CampaignMessage, handle)
