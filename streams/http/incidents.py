"""A person closing or containing an incident (结案 / 撤销 / 控制), on the worker that holds it.

    POST /api/v1/incidents/{incident_id}/close     {"reason": "handled"|"false_alarm"|"duplicate",
                                                    "of": id (a duplicate), "by", "note"}
    POST /api/v1/incidents/{incident_id}/contain   {"by", "note"}

Closing cancels every open task (each department gets the cancelled snapshot on its topic and
stream), records the person and the reason, and tells the reporters as any closing does.
Containing marks the incident under control; it stays open to tasks and alarms. 409 when the
incident is closed already (or, to contain, not open); 404 unknown; 422 naming the field.

    >>> httpx.post(f"{url}/api/v1/incidents/{inc}/close", json={"reason": "handled",
    ...            "by": "王值班"}, headers=admin).json()["status"]
    'closed'
"""

from __future__ import annotations

import uuid

from aiohttp.web import Request
from faust.web import Response

from schemas import CloseRequest, ContainRequest, IncidentUpdate, topics
from schemas.codec import dump
from streams.http.api import incident_or_404
from streams.http.errors import Refusal, problem
from streams.http.views import ApiView, Route

__all__ = ["ROUTES"]


class CloseIncident(ApiView):
    rights = {"post": "change_incidents"}
    routed_by = "incident_id"

    async def post(self, request: Request, incident_id: str) -> Response:
        w = self.whistle
        incident = incident_or_404(w, incident_id, request["caller"])
        body = await self.read_model(request, CloseRequest, "close")
        by = self.person(request, body.by)
        if incident["status"] == "closed":
            raise Refusal(409, f"incident {incident_id} is closed already",
                          problem("status", "closed"))
        if body.of is not None:
            if body.of == incident_id:
                raise Refusal(422, "an incident is no duplicate of itself",
                              [{"loc": ["of"], "msg": "names this incident"}])
            if self.gate.routing.owner(body.of) is None and w.tables.incidents.get(body.of) is None:
                raise Refusal(422, f"no incident {body.of}", [{"loc": ["of"], "msg": "unknown"}])
        update = IncidentUpdate(update_id=uuid.uuid4().hex, incident_id=incident_id,
                                action="close", reason=body.reason, into=body.of, by=by,
                                note=body.note, at=w.clock())
        closed = await self.submit(topics.INCIDENT_UPDATES, incident_id, update.update_id,
                                   dump(update), "status", ("incident_id", incident_id))
        return self.reply(closed.model_dump(mode="json"))


class ContainIncident(ApiView):
    rights = {"post": "change_incidents"}
    routed_by = "incident_id"

    async def post(self, request: Request, incident_id: str) -> Response:
        w = self.whistle
        incident = incident_or_404(w, incident_id, request["caller"])
        body = await self.read_model(request, ContainRequest, "contain")
        by = self.person(request, body.by)
        if incident["status"] != "open":
            raise Refusal(409, f"incident {incident_id} is {incident['status']}",
                          problem("status", incident["status"]))
        update = IncidentUpdate(update_id=uuid.uuid4().hex, incident_id=incident_id,
                                action="contain", by=by, note=body.note, at=w.clock())
        contained = await self.submit(topics.INCIDENT_UPDATES, incident_id, update.update_id,
                                      dump(update), "status", ("incident_id", incident_id))
        return self.reply(contained.model_dump(mode="json"))


ROUTES: list[Route] = [
    Route("/api/v1/incidents/{incident_id}/close", CloseIncident),
    Route("/api/v1/incidents/{incident_id}/contain", ContainIncident),
]
