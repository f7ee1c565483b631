"""Joint campaigns (专项整治 / 联合执法) over HTTP: start one from a campaign playbook, record what
the departments found at each site, follow its progress, end it, and print its report.

    POST /api/v1/campaigns                     {"playbook", "campaign_id"?, "by"?}
                                               -> 201 {"campaign", "progress"}
    GET  /api/v1/campaigns[?status=running|ended]          -> {"campaigns": [summary, ...]}
    GET  /api/v1/campaigns/{campaign_id}                   -> {"campaign", "progress"}
    GET  /api/v1/campaigns/{campaign_id}/sites[?grid=&department=&state=open|done|overdue
                                               &limit=&cursor=]  -> {"sites": [...]}
    GET  /api/v1/campaigns/{campaign_id}/report?format=html|csv|md
    POST /api/v1/campaigns/{campaign_id}/findings  {"site_id", "department", "task_id"?,
                                               "outcome", "note"?, "by"?} -> 200 the site
    POST /api/v1/campaigns/{campaign_id}/end   {"by"?}     -> 200 {"campaign", "progress"}
    GET  /api/v1/campaign-playbooks                        -> {"playbooks": [...]}

A campaign lives in the partition of its id (`whistle.campaigns`, the `campaigns` and
`campaign_sites` tables), so a request about one is answered by the worker holding it, and the
list is gathered from every worker. Everything this worker can check is checked before
anything is written (422 naming the field, 404, 409, 403); the campaigns agent applies the
record and answers, so a 201 or 200 is what the tables hold. An admin starts and ends; a
department records findings for itself only, and reads the campaigns it has a step in.

    >>> started = httpx.post(f"{url}/api/v1/campaigns", headers=admin,
    ...                      json={"playbook": "gas-safety"}).json()
    >>> started["campaign"]["campaign_id"], started["progress"]["done"]
    ('cmp-gas-safety-20260301', 0)
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import quote

from aiohttp.web import Request
from faust.web import Response

from agents.logic.campaigns import CampaignError, campaign_id_for, progress, record, targets
from agents.report.campaign_report import campaign_csv, campaign_html, campaign_markdown
from schemas import topics
from schemas.campaign import (
    CAMPAIGN_STATUSES,
    Campaign,
    CampaignEnd,
    CampaignFinding,
    CampaignSite,
    CampaignStart,
    CampaignSummary,
    CampaignTask,
    EndCampaignRequest,
    FindingRequest,
    StartCampaignRequest,
    site_key,
)
from schemas.codec import dump
from streams.http.auth import Caller
from streams.http.errors import Refusal, problem
from streams.http.listing import Found
from streams.http.views import ApiView, Route
from streams.reports import MEDIA_TYPES
from streams.worker import Whistle

__all__ = ["REPORT_FORMATS", "ROUTES", "SITE_STATES"]

SITE_STATES = ("open", "done", "overdue")
"""A site's state in a campaign, for the tasks asked about (a department's, or all): `done`
when each has a finding, `overdue` when one without a finding is past due, else `open`."""

REPORT_FORMATS = ("html", "csv", "md")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _forbidden_id(campaign_id: str) -> bool:
    """An id no path can name (it would split the path)."""
    return "/" in campaign_id or campaign_id in (".", "..")


def sites_of(w: Whistle, campaign: Campaign) -> list[CampaignSite]:
    """The campaign's site records, in its order (this worker holds its partition)."""
    found = (w.tables.campaign_sites.get(site_key(campaign.campaign_id, s))
             for s in campaign.sites)
    return [CampaignSite.model_validate(s) for s in found if s is not None]


def answer(w: Whistle, campaign: Campaign, sites: list[CampaignSite] | None = None) -> dict:
    """The campaign with its progress now, per department and per grid."""
    sites = sites_of(w, campaign) if sites is None else sites
    return {"campaign": campaign.model_dump(mode="json"),
            "progress": progress(campaign, sites, w.clock()).model_dump(mode="json")}


def summary(w: Whistle, campaign: Campaign) -> dict:
    done = progress(campaign, sites_of(w, campaign), w.clock())
    return CampaignSummary(
        **campaign.model_dump(include={"campaign_id", "title", "playbook", "status",
                                       "started_at", "started_by", "ended_at", "ended_by"}),
        **done.model_dump(include={"at", "sites", "sites_done", "tasks", "done", "overdue",
                                   "outcomes"})).model_dump(mode="json")


def sees(caller: Caller, campaign: Campaign) -> bool:
    """An admin sees every campaign; a department those it has a step in."""
    return caller.role == "admin" or any(caller.may_see(s.department) for s in campaign.steps)


async def routed(view: ApiView, request: Request, campaign_id: str,
                 body: bytes | None = None) -> Response | None:
    """The answer of the worker holding the campaign, or None to answer here."""
    return await view.gate.routing.route_to(view, request, topics.TRIAGED, campaign_id,
                                            "campaigns", body)


def campaign_or_404(view: ApiView, request: Request, campaign_id: str) -> Campaign:
    stored = view.whistle.tables.campaigns.get(campaign_id)
    if stored is None:
        raise Refusal(404, f"no campaign {campaign_id}", problem("campaign_id", "unknown"))
    campaign = Campaign.model_validate(stored)
    if not sees(request["caller"], campaign):
        raise Refusal(403, f"{request['caller'].department} has no step in campaign "
                           f"{campaign_id}", problem("campaign_id", "not your department's"))
    return campaign


def _refused(error: CampaignError) -> Refusal:
    return Refusal(422, error.message, problem(error.field, error.message))


class Campaigns(ApiView):
    rights = {"get": "read_campaigns", "post": "change_campaigns"}

    async def post(self, request: Request) -> Response:
        w = self.whistle
        body = await self.read_model(request, StartCampaignRequest, "campaign")
        by = self.person(request, body.by)
        loaded = w.campaign_playbooks.get(body.playbook)
        if loaded is None:
            raise Refusal(422, f"no campaign playbook {body.playbook}; see GET "
                               f"/api/v1/campaign-playbooks", problem("playbook", "unknown"))
        now = w.clock()
        campaign_id = body.campaign_id or campaign_id_for(body.playbook, now)
        if _forbidden_id(campaign_id):
            raise Refusal(422, "a campaign id names a path: no / in it, not . or ..",
                          problem("campaign_id", "contains / (or is . or ..)"))
        sent = json.dumps({**body.model_dump(), "campaign_id": campaign_id, "by": by},
                          ensure_ascii=False).encode("utf-8")
        if (elsewhere := await routed(self, request, campaign_id, sent)) is not None:
            return elsewhere
        if w.tables.campaigns.get(campaign_id) is not None:
            raise Refusal(409, f"campaign {campaign_id} exists already",
                          problem("campaign_id", "exists"))
        if not targets(loaded.playbook, w.registry.sites()):
            raise Refusal(422, "the campaign names no registered site",
                          problem("targets", "no registered site is a target"))
        start = CampaignStart(update_id=uuid.uuid4().hex, campaign_id=campaign_id,
                              playbook=body.playbook, by=by, at=now)
        campaign, sites = await self.submit(topics.CAMPAIGNS, campaign_id, start.update_id,
                                            dump(start), "campaign_id",
                                            ("campaign_id", campaign_id))
        return self.reply(answer(w, campaign, sites), status=201,
                          headers={"Location": f"/api/v1/campaigns/{quote(campaign_id)}"})

    async def get(self, request: Request) -> Response:
        w = self.whistle
        status = self.query(request, "status", CAMPAIGN_STATUSES)
        caller = request["caller"]
        found = [summary(w, c) for c in (Campaign.model_validate(v)
                                         for v in w.tables.campaigns.values())
                 if (status is None or c.status == status) and sees(caller, c)]
        elsewhere, _ = await self.gate.routing.gather(request, "campaigns")
        return self.reply({"campaigns": sorted(
            found + elsewhere, key=lambda c: (c["started_at"], c["campaign_id"]), reverse=True)})


class OneCampaign(ApiView):
    rights = {"get": "read_campaigns"}

    async def get(self, request: Request, campaign_id: str) -> Response:
        if (elsewhere := await routed(self, request, campaign_id)) is not None:
            return elsewhere
        return self.reply(answer(self.whistle, campaign_or_404(self, request, campaign_id)))


def _state(tasks: list[CampaignTask], now: Any) -> str:
    if all(t.outcome is not None for t in tasks):
        return "done"
    return "overdue" if any(t.outcome is None and t.due < now for t in tasks) else "open"


class CampaignSites(ApiView):
    rights = {"get": "read_campaigns"}

    async def get(self, request: Request, campaign_id: str) -> Response:
        if (elsewhere := await routed(self, request, campaign_id)) is not None:
            return elsewhere
        w = self.whistle
        campaign = campaign_or_404(self, request, campaign_id)
        grid, state = self.query(request, "grid"), self.query(request, "state", SITE_STATES)
        department = self.query(request, "department")
        if department is not None and department not in {s.department for s in campaign.steps}:
            raise Refusal(422, f"{department} has no step in campaign {campaign_id}",
                          [{"loc": ["query", "department"], "msg": "no step in the campaign"}])
        wanted = Found.parse({k: v for k, v in request.query.items() if k in ("limit", "cursor")})
        now = w.clock()
        if campaign.ended_at is not None:  # an ended campaign is counted as at its end
            now = min(now, campaign.ended_at)
        place = {site_id: n for n, site_id in enumerate(campaign.sites)}
        found = [s.model_dump(mode="json") for s in sites_of(w, campaign)
                 if (grid is None or s.grid == grid)
                 and (state is None or _state([t for t in s.tasks if department in (
                     None, t.department)], now) == state)]
        page, cursor = wanted.page(found, lambda s: (f"{place[s['site_id']]:09d}", s["site_id"]),
                                   newest_first=False)
        return self.reply({"sites": page, **({"next_cursor": cursor}
                                             if wanted.limit is not None else {})})


class CampaignReport(ApiView):
    rights = {"get": "read_campaigns"}

    async def get(self, request: Request, campaign_id: str) -> Response:
        if (elsewhere := await routed(self, request, campaign_id)) is not None:
            return elsewhere
        w = self.whistle
        fmt = self.query(request, "format", REPORT_FORMATS) or "html"
        campaign = campaign_or_404(self, request, campaign_id)
        names = {d: dept.name for d, dept in w.departments.items()}
        sites, now = sites_of(w, campaign), w.clock()
        name = f"{_SAFE.sub('_', campaign_id)}.{fmt}"
        headers = {"X-Content-Type-Options": "nosniff"}
        if fmt == "csv":
            body = campaign_csv(campaign, sites, names, now)
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        else:
            body = (campaign_html if fmt == "html" else campaign_markdown)(
                campaign, sites, names, now).encode("utf-8")
            headers["Content-Disposition"] = f'inline; filename="{name}"'
        if fmt == "html":  # a report runs nothing, whatever a site's name or a note says
            headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return self.raw(body, MEDIA_TYPES[fmt], headers=headers)


class Findings(ApiView):
    rights = {"post": "record_findings"}

    async def post(self, request: Request, campaign_id: str) -> Response:
        if (elsewhere := await routed(self, request, campaign_id)) is not None:
            return elsewhere
        w = self.whistle
        campaign = campaign_or_404(self, request, campaign_id)
        body = await self.read_model(request, FindingRequest, "finding")
        if not request["caller"].may_see(body.department):
            raise Refusal(403, f"a {request['caller'].department} token records only its own "
                               f"findings", problem("department", "not your department"))
        by = self.person(request, body.by)
        if campaign.status != "running":
            raise Refusal(409, f"campaign {campaign_id} has ended: it takes no finding",
                          problem("status", campaign.status))
        if body.department not in w.departments:
            raise Refusal(422, f"no department {body.department}",
                          problem("department", "unknown"))
        stored = (w.tables.campaign_sites.get(site_key(campaign_id, body.site_id))
                  if body.site_id in campaign.sites else None)
        if stored is None:
            raise Refusal(422, f"{body.site_id} is no site of campaign {campaign_id}",
                          problem("site_id", "not a site of the campaign"))
        finding = CampaignFinding(update_id=uuid.uuid4().hex, campaign_id=campaign_id,
                                  site_id=body.site_id, department=body.department,
                                  task_id=body.task_id, outcome=body.outcome, note=body.note,
                                  by=by, at=w.clock())
        try:  # what the agent will find wrong, said before anything is written
            record(CampaignSite.model_validate(stored), finding)
        except CampaignError as exc:
            raise _refused(exc) from None
        site = await self.submit(topics.CAMPAIGNS, campaign_id, finding.update_id, dump(finding),
                                 "status", ("campaign_id", campaign_id))
        return self.reply(site.model_dump(mode="json"))


class EndCampaign(ApiView):
    rights = {"post": "change_campaigns"}

    async def post(self, request: Request, campaign_id: str) -> Response:
        if (elsewhere := await routed(self, request, campaign_id)) is not None:
            return elsewhere
        w = self.whistle
        campaign = campaign_or_404(self, request, campaign_id)
        body = await self.read_model(request, EndCampaignRequest, "end")
        by = self.person(request, body.by)
        if campaign.status != "running":
            raise Refusal(409, f"campaign {campaign_id} has ended already",
                          problem("status", campaign.status))
        command = CampaignEnd(update_id=uuid.uuid4().hex, campaign_id=campaign_id, by=by,
                              at=w.clock())
        ended = await self.submit(topics.CAMPAIGNS, campaign_id, command.update_id,
                                  dump(command), "status", ("campaign_id", campaign_id))
        return self.reply(answer(w, ended))


class CampaignPlaybooks(ApiView):
    rights = {"get": "read_campaigns"}

    async def get(self, request: Request) -> Response:
        w = self.whistle
        return self.reply({"playbooks": [
            {**loaded.playbook.model_dump(mode="json"), "content_hash": loaded.content_hash,
             "sites": len(targets(loaded.playbook, w.registry.sites()))}
            for _, loaded in sorted(w.campaign_playbooks.items())]})


ROUTES: list[Route] = [
    Route("/api/v1/campaigns", Campaigns),
    Route("/api/v1/campaigns/{campaign_id}", OneCampaign),
    Route("/api/v1/campaigns/{campaign_id}/sites", CampaignSites),
    Route("/api/v1/campaigns/{campaign_id}/report", CampaignReport),
    Route("/api/v1/campaigns/{campaign_id}/findings", Findings),
    Route("/api/v1/campaigns/{campaign_id}/end", EndCampaign),
    Route("/api/v1/campaign-playbooks", CampaignPlaybooks),
]
"""The campaigns' paths and their views (`streams.app` mounts them)."""
