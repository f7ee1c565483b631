"""Who and where, for the duty officer's board (`/board`): the departments and the registry.

    GET /api/v1/departments          any department or admin token
        -> {"departments": [{id, name, name_en, tier, report_within, report_within_seconds,
                             lead}, ...]}       (departments.yaml, in its order)
    GET /api/v1/sites[?q=text]       admin (read_registry)
        -> {"sites": [{site_id, name, type, address, grid, lat, lon}, ...],
            "grids": [{id, name, outline: [[lat, lon], ...]}, ...]}     (grids by id)

Without `q` every registered site and every grid outline (the board's map); with `q` the sites
whose name, address, site_id or grid holds it (case and width folded, as the registry compares
addresses), at most `SEARCH_LIMIT`, best first, and the outlines of their grids:

    >>> [s.site_id for s in search(registry.sites(), "实验室")]
    ['jyh-yinfeng-lab-3']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp.web import Request
from faust.web import Response

from agents.logic.correlation import SiteState
from agents.logic.locate import normalize
from schemas import Department, Site
from schemas.site import Grid
from streams.http.errors import Refusal, problem
from streams.http.views import ApiView, Route
from streams.worker import Whistle

__all__ = ["ROUTES", "SEARCH_LIMIT", "department_json", "grids_for", "search", "site_json"]

SEARCH_LIMIT = 50
"""The most sites a search answers with: a form's suggestions, not a listing."""
MAX_QUERY = 200


def search(sites: Iterable[Site], q: str, limit: int = SEARCH_LIMIT) -> list[Site]:
    """The sites whose site_id, name, address or grid holds `q` (after `normalize`: NFKC,
    no whitespace, case folded), at most `limit`: the site with that id first, then names that
    start with it, then the rest, each by name and id. An empty `q` finds nothing."""
    key = normalize(q)
    if not key:
        return []
    found = []
    for site in sites:
        site_id, name = normalize(site.site_id), normalize(site.name)
        if site_id == key:
            rank = 0
        elif name.startswith(key):
            rank = 1
        elif key in name or key in site_id or key in normalize(site.address) \
                or key in normalize(site.grid):
            rank = 2
        else:
            continue
        found.append((rank, site.name, site.site_id, site))
    found.sort(key=lambda f: f[:3])
    return [f[3] for f in found[:limit]]


def grids_for(grids: dict[str, Grid], sites: list[Site], q: str) -> list[Grid]:
    """The outlines of the grids the sites lie in, and of grids whose id or name holds `q`."""
    key = normalize(q)
    wanted = {s.grid for s in sites}
    return [g for _, g in sorted(grids.items())
            if g.id in wanted or (key and (key in normalize(g.id) or key in normalize(g.name)))]


def site_json(site: Site) -> dict[str, Any]:
    """What the board needs of a site: no overrides (units, contacts)."""
    return {"site_id": site.site_id, "name": site.name, "type": site.type,
            "address": site.address, "grid": site.grid, "lat": site.lat, "lon": site.lon}


def department_json(department: Department) -> dict[str, Any]:
    return {**department.model_dump(mode="json"),
            "report_within_seconds": int(department.report_within.total_seconds())}


class Departments(ApiView):
    rights = {"get": "read_departments"}

    async def get(self, request: Request) -> Response:
        return self.reply({"departments": [department_json(d)
                                           for d in self.whistle.departments.values()]})


class Sites(ApiView):
    rights = {"get": "read_registry"}

    async def get(self, request: Request) -> Response:
        registry = self.whistle.registry
        q = request.query.get("q")
        if q is None:
            return self.reply({"sites": [site_json(s) for s in registry.sites()],
                               "grids": [g.model_dump(mode="json")
                                         for _, g in sorted(registry.grids.items())]})
        if len(q) > MAX_QUERY:
            raise Refusal(422, "q is too long",
                          [{"loc": ["query", "q"], "msg": f"at most {MAX_QUERY} characters"}])
        found = search(registry.sites(), q)
        return self.reply({"sites": [site_json(s) for s in found],
                           "grids": [g.model_dump(mode="json")
                                     for g in grids_for(registry.grids, found, q)]})


class OneSite(ApiView):
    rights = {"get": "read_registry"}

    async def get(self, request: Request, site_id: str) -> Response:
        w = self.whistle
        site = w.registry.site(site_id)
        state = SiteState.from_json(w.tables.sites.get(site_id))  # its false alarms
        if site is None and w.tables.sites.get(site_id) is None:
            raise Refusal(404, f"no site {site_id}", problem("site_id", "unknown"))
        return self.reply({
            "site": site.model_dump(mode="json") if site else None,
            "open_incidents": [c.incident_id for c in _place(w, site, state).clusters
                               if not c.muted],
            "false_alarms": {day: len(ids) for day, ids in state.false_alarms.items()},
            "flagged": state.flagged})


def _place(w: Whistle, site: Site | None, state: SiteState) -> SiteState:
    """Triage's state of the site's building (its open incidents), if it shares one."""
    if site is None or site.triage_key == site.site_id:
        return state
    return SiteState.from_json(w.tables.sites.get(site.triage_key))


ROUTES: list[Route] = [
    Route("/api/v1/departments", Departments),
    Route("/api/v1/sites", Sites),
    Route("/api/v1/sites/{site_id}", OneSite),
]
