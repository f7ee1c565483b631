"""The shift handover (交接班): what the outgoing duty officer hands the next one, admin only.

    GET /api/v1/handover?since=2026-12-06T08:00:00+08:00[&until=...][&format=json|md|html]

Opened, closed and escalated in the shift, still open at its end (each department's open
tasks), overdue now (`agents.report.handover`). Incidents, tasks and timelines are partitioned
across workers, so the worker asked gathers every other worker's part (`streams.http.routing`):
a forwarded request (`X-Whistle-Forwarded`) is answered with this worker's part as JSON,
`{"parts": [{"incidents", "tasks", "entries"}]}`, whatever the format, and only the worker
asked renders. 422 naming `since` (missing, no RFC 3339 time with an offset), `until` (bad,
or before since) or `format`; 403 for any token but an admin's.

    >>> httpx.get(f"{url}/api/v1/handover", params={"since": "2026-12-06T08:00:00+08:00",
    ...           "format": "md"}, headers=admin).text.splitlines()[0]
    '# 交接班报告 Shift handover'
"""

from __future__ import annotations

from aiohttp.web import Request
from faust.web import Response

from agents.report.handover import BadShift, handover, parse_shift, part
from agents.report.handover_report import FORMATS, render_handover
from streams.http.errors import Refusal
from streams.http.routing import FORWARDED
from streams.http.views import ApiView, Route
from streams.reports import MEDIA_TYPES

__all__ = ["ROUTES"]


class Handover(ApiView):
    rights = {"get": "read_handover"}

    async def get(self, request: Request) -> Response:
        w = self.whistle
        fmt = self.query(request, "format", FORMATS) or "json"
        try:
            shift = parse_shift(request.query.get("since"), request.query.get("until"),
                                w.clock())
        except BadShift as exc:
            raise Refusal(422, f"bad {exc.param}",
                          [{"loc": ["query", exc.param], "msg": exc.msg}]) from None
        own = part(shift, w.tables.incidents.values(), w.tables.tasks.values(),
                   (e for kept in w.tables.timelines.values() for e in kept))
        if request.headers.get(FORWARDED):
            return self.reply({"parts": [own]})
        others, _ = await self.gate.routing.gather(request, "parts")
        parts = [own, *others]
        incidents = [i for p in parts for i in p["incidents"]]
        sites = {i["site_id"]: site.name for i in incidents
                 if (site := w.registry.site(i["site_id"])) is not None}
        made = handover(shift, incidents, [t for p in parts for t in p["tasks"]],
                        [e for p in parts for e in p["entries"]],
                        {d: x.name for d, x in w.departments.items()}, sites)
        local = shift.since.strftime("%Y%m%dT%H%M")
        headers = {"Content-Disposition": f'inline; filename="handover-{local}.{fmt}"',
                   "X-Content-Type-Options": "nosniff"}
        if fmt == "html":  # a report runs nothing, whatever a gateway sent
            headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return self.raw(render_handover(made, fmt), MEDIA_TYPES[fmt], headers=headers)


ROUTES: list[Route] = [Route("/api/v1/handover", Handover)]
"""The handover's path (`streams.app` mounts it with the others)."""
