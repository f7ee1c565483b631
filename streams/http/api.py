"""The HTTP API under /api/v1 (Faust web views), as the contract says.

    POST /api/v1/alarms                      -> 202 {"accepted": [...]} once the broker acked all
                                                (JSON, or one CAP 1.2 alert as application/cap+xml)
    GET  /api/v1/incidents[?status=&site_id=...]    POST: a report by hand (streams.http.command)
    GET  /api/v1/incidents/{incident_id}[?format=cap]        (CAP 1.2 XML with format=cap)
    GET  /api/v1/incidents/{incident_id}/timeline?format=json|csv|md|html
    GET  /api/v1/tasks[?department=&status=&incident_id=]
    POST /api/v1/tasks/{task_id}/ack|start|complete|reject|progress   {"by": str, "note": str}
    POST /api/v1/incidents/{incident_id}/level               {"level": "I", "by": str, "note": str}
    GET  /api/v1/sites/{site_id}   GET /api/v1/devices/{device_id}   (registry and triage state)
    (the playbooks are `streams.http.playbooks`, the probes `streams.http.probes`, the
    department stream `streams.notify.feed`, the console `streams.notify.console`)

Every refusal is JSON: `{"error": str, "details": [{"loc": [...], "msg": str}]}`.
Who may call what is `streams.http.auth.RIGHTS`; each view names the right each method needs.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

from aiohttp.web import Request
from faust.web import Response
from pydantic import ValidationError

from agents.logic.incidents import BY_HAND
from agents.logic.taskstate import IllegalTransition, next_status
from agents.logic.timelines import in_time_order
from agents.report.wording import phones_masked
from schemas import (
    INCIDENT_STATUSES,
    TASK_ACTIONS,
    TASK_STATUSES,
    Alarm,
    Incident,
    IncidentUpdate,
    LevelRequest,
    Task,
    TaskUpdate,
    TaskUpdateRequest,
    Timeline,
    topics,
)
from schemas.cap import CAP_CONTENT_TYPE, CapError, alarm_from_cap, incident_to_cap
from schemas.codec import dump, error_details
from streams.http.auth import Caller
from streams.http.command import open_by_hand
from streams.http.errors import Refusal, problem
from streams.http.listing import Found, incident_key, task_key
from streams.http.views import ApiView, Route
from streams.reports import FORMATS, MEDIA_TYPES, render_timeline
from streams.worker import Whistle

__all__ = ["ROUTES"]

ALARM_TYPES = ("application/json", CAP_CONTENT_TYPE)


def _parse_alarms(data: Any, w: Whistle) -> list[Alarm]:
    now = w.clock()
    batch = isinstance(data, list)
    items = data if batch else [data]
    if not isinstance(data, (list, dict)):
        raise Refusal(422, "body must be an Alarm object or an array of them",
                      problem("body", f"got {type(data).__name__}"))
    if batch and not 1 <= len(items) <= w.settings.max_batch:
        raise Refusal(422, f"a batch holds 1 to {w.settings.max_batch} alarms",
                      problem("body", f"got {len(items)}"))
    alarms, details = [], []
    for i, item in enumerate(items):
        try:
            alarms.append(Alarm.model_validate(item, context={"now": now}))
        except ValidationError as exc:
            details += error_details(exc, (i,) if batch else ())
            continue
        if BY_HAND in alarms[-1].attributes:
            details.append({"loc": [*((i,) if batch else ()), "attributes", BY_HAND],
                            "msg": "reserved for reports the duty officer enters: POST "
                                   "/api/v1/incidents"})
    if details:
        raise Refusal(422, "invalid alarm" + ("s" if batch else ""), details)
    return [a.model_copy(update={"received_at": now}) for a in alarms]


def _written(alarm: Alarm, index: int, batch: int) -> bytes:
    """The alarm as it goes on the topic; one that cannot be written is the sender's fault
    (422), never the broker's (503, which a gateway would retry for ever)."""
    try:
        return dump(alarm)
    except Exception as exc:
        loc = [index] if batch > 1 else ["body"]
        raise Refusal(422, "invalid alarm", [{"loc": loc, "msg": f"cannot be written as "
                                                                 f"JSON: {exc}"}]) from None


def _parse_cap(body: bytes, w: Whistle) -> Alarm:
    now = w.clock()
    try:
        alarm = alarm_from_cap(body, now)
    except CapError as exc:
        raise Refusal(422, f"invalid CAP alert: {exc}", exc.details()) from None
    return alarm.model_copy(update={"received_at": now})


def _check_outcome(task: Task, action: str, outcome: str | None) -> None:
    """A verification is completed with what was found; nothing else has an outcome."""
    if task.verification and action == "complete" and outcome is None:
        raise Refusal(422, "completing a verification needs its outcome",
                      problem("outcome", "required: confirmed or false_alarm"))
    if outcome is not None and not (task.verification and action == "complete"):
        raise Refusal(422, "only completing a verification task has an outcome",
                      problem("outcome", "not allowed here"))


class Alarms(ApiView):
    rights = {"post": "post_alarms"}

    async def post(self, request: Request) -> Response:
        w = self.whistle
        try:
            if request.content_type == CAP_CONTENT_TYPE:
                alarms = [_parse_cap(await self.read_body(request, (CAP_CONTENT_TYPE,)), w)]
            else:
                alarms = _parse_alarms(await self.read_json(request, ALARM_TYPES), w)
            records = [(w.locate(a).site.triage_key, _written(a, i, len(alarms)))
                       for i, a in enumerate(alarms)]
        except Refusal as exc:
            w.metrics.rejected.labels(status=str(exc.status)).inc()
            raise
        try:
            await asyncio.wait_for(self._persist(records), w.settings.ingest_timeout)
        except Exception as exc:  # the broker did not take them all: say so, never 202
            w.metrics.rejected.labels(status="503").inc()
            w.app.log.warning("alarm ingest failed: %r", exc)
            said = repr(exc) if str(exc) else (
                f"no acknowledgement within {w.settings.ingest_timeout:g} s"
                if isinstance(exc, TimeoutError) else type(exc).__name__)
            self.gate.probe.refused(f"the last alarm write was not acknowledged ({said})")
            raise Refusal(503, "the broker did not acknowledge the alarms; retry with the "
                               "same alarm_id", problem("broker", said),
                          {"Retry-After": "1"}) from None
        self.gate.probe.taken()
        w.metrics.ingested.inc(len(alarms))
        return self.reply({"accepted": [a.alarm_id for a in alarms]}, status=202)

    async def _persist(self, records: list[tuple[str, bytes]]) -> None:
        w = self.whistle
        acks = [await w.send(topics.ALARMS, site, value) for site, value in records]
        await asyncio.gather(*acks)


class Incidents(ApiView):
    rights = {"get": "read_incidents", "post": "change_incidents"}

    async def post(self, request: Request) -> Response:
        return await open_by_hand(self, request)

    async def get(self, request: Request) -> Response:
        w = self.whistle
        status = self.query(request, "status", INCIDENT_STATUSES)
        wanted = Found.parse(request.query)
        caller = request["caller"]
        found = [shown(v, caller) for v in w.tables.incidents.values()
                 if (status is None or v["status"] == status)
                 and (not wanted.filters or wanted.incident_fits(
                     v, w.registry.site(v["site_id"]) if wanted.needs_site else None,
                     departments_of(w, v) if wanted.department is not None else ()))
                 and (caller.role == "admin" or involves(w, v, caller))]
        elsewhere, more = await self.gate.routing.gather(request, "incidents")  # shown there
        page, cursor = wanted.page(found + elsewhere, incident_key, newest_first=True,
                                   more_elsewhere=more)
        return self.reply({"incidents": page, **({"next_cursor": cursor}
                                                 if wanted.limit is not None else {})})


def departments_of(w: Whistle, incident: dict) -> set[str]:
    """The departments the incident has a task for (its tasks are in its partition)."""
    return {t["department"] for t in (w.tables.tasks.get(i) for i in incident["task_ids"])
            if t is not None}


def shown(value: Any, caller: Caller) -> Any:
    """What the caller may see of an incident or a timeline entry: reporters' phone
    numbers whole only for an admin."""
    return value if caller.role == "admin" else phones_masked(value)


def involves(w: Whistle, incident: dict, caller: Caller) -> bool:
    """Whether the caller's department has a task in the incident."""
    return any(caller.may_see((w.tables.tasks.get(t) or {}).get("department"))
               for t in incident["task_ids"])


def incident_or_404(w: Whistle, incident_id: str, caller: Caller) -> dict:
    stored = w.tables.incidents.get(incident_id)
    if stored is None:
        raise Refusal(404, f"no incident {incident_id}", problem("incident_id", "unknown"))
    if caller.role != "admin" and not involves(w, stored, caller):
        raise Refusal(403, f"{caller.department} has no task in incident {incident_id}",
                      problem("incident_id", "not your department's"))
    return stored


class OneIncident(ApiView):
    rights = {"get": "read_incidents"}
    routed_by = "incident_id"

    async def get(self, request: Request, incident_id: str) -> Response:
        w = self.whistle
        fmt = self.query(request, "format", ("json", "cap")) or "json"
        stored = incident_or_404(w, incident_id, request["caller"])
        if fmt == "json":
            return self.reply(shown(stored, request["caller"]))
        incident = Incident.model_validate(stored)
        loaded = w.library.version(incident.playbook)
        xml = incident_to_cap(
            incident, site=w.site(incident.site_id),
            title=loaded.playbook.title if loaded else incident.playbook.id,
            confirmed=incident.confirmed, sender=f"whistle@{w.settings.host}",
            sent=w.clock())
        return self.raw(xml, f"{CAP_CONTENT_TYPE}; charset=utf-8")


class IncidentTimeline(ApiView):
    rights = {"get": "read_incidents"}
    routed_by = "incident_id"

    async def get(self, request: Request, incident_id: str) -> Response:
        w = self.whistle
        fmt = self.query(request, "format", FORMATS) or "json"
        caller = request["caller"]
        incident = incident_or_404(w, incident_id, caller)
        entries = [e for e in in_time_order(w.tables.timelines.get(incident_id) or [])
                   if e.department is None or caller.may_see(e.department)]
        if fmt == "json":
            return self.reply(shown({"incident": incident,
                                     "entries": [e.model_dump(mode="json", exclude_none=True)
                                                 for e in entries]}, caller))
        timeline = Timeline(incident=Incident.model_validate(incident), entries=entries)
        body = render_timeline(timeline, fmt, {d: x.name for d, x in w.departments.items()})
        headers = {"Content-Disposition": f'inline; filename="{incident_id}.{fmt}"',
                   "X-Content-Type-Options": "nosniff"}
        if fmt == "html":  # a report runs nothing, whatever a gateway sent
            headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return self.raw(body, MEDIA_TYPES[fmt], headers=headers)


class Tasks(ApiView):
    rights = {"get": "read_tasks"}

    async def get(self, request: Request) -> Response:
        w = self.whistle
        department = self.query(request, "department")
        caller = request["caller"]
        if caller.role != "admin":
            if department not in (None, caller.department):
                raise Refusal(403, f"a {caller.department} token reads only its own tasks",
                              [{"loc": ["query", "department"], "msg": "not yours"}])
            department = caller.department
        status = self.query(request, "status", TASK_STATUSES)
        incident_id = self.query(request, "incident_id")
        wanted = Found.parse(request.query)
        of_incident = replace(wanted, department=None)  # the task's own, above

        def fits(task: dict) -> bool:
            if not of_incident.filters:
                return True
            incident = w.tables.incidents.get(task["incident_id"]) or {
                "incident_id": task["incident_id"], "site_id": "", "opened_at": task["created_at"]}
            return of_incident.incident_fits(
                incident, w.registry.site(incident["site_id"])
                if incident["site_id"] and of_incident.needs_site else None,
                (), at=task["created_at"],
                also=(task["action"], task["task_id"], task["department"]))

        found = [v for v in w.tables.tasks.values()
                 if (department is None or v["department"] == department)
                 and (status is None or v["status"] == status)
                 and (incident_id is None or v["incident_id"] == incident_id)
                 and fits(v)]
        elsewhere, more = await self.gate.routing.gather(request, "tasks")
        page, cursor = wanted.page(found + elsewhere, task_key, newest_first=False,
                                   more_elsewhere=more)
        return self.reply({"tasks": page, **({"next_cursor": cursor}
                                             if wanted.limit is not None else {})})


class TaskAction(ApiView):
    rights = {"post": "change_tasks"}
    routed_by = "task_id"

    async def post(self, request: Request, task_id: str, action: str) -> Response:
        w = self.whistle
        if action not in TASK_ACTIONS:
            raise Refusal(404, f"no action {action}; use one of {', '.join(TASK_ACTIONS)}",
                          problem("action", "unknown"))
        stored = w.tables.tasks.get(task_id)
        if stored is None:
            raise Refusal(404, f"no task {task_id}", problem("task_id", "unknown"))
        task = Task.model_validate(stored)
        if not request["caller"].may_see(task.department):
            raise Refusal(403, f"task {task_id} belongs to {task.department}",
                          problem("task_id", "not your department's"))
        data = await self.read_json(request)
        try:
            body = TaskUpdateRequest.model_validate(data)
            by = self.person(request, body.by)
            update = TaskUpdate(update_id=uuid.uuid4().hex, task_id=task_id,
                                incident_id=task.incident_id, action=action, by=by,
                                note=body.note, outcome=body.outcome, at=w.clock())
        except ValidationError as exc:
            raise Refusal(422, "invalid task update", error_details(exc)) from None
        try:
            next_status(task.status, action)
        except IllegalTransition as exc:
            raise Refusal(409, str(exc), problem("status", task.status)) from None
        _check_outcome(task, action, body.outcome)
        task = await self.submit(topics.TASK_UPDATES, update.incident_id, update.update_id,
                                 dump(update), "status", ("task_id", task_id))
        return self.reply(task.model_dump(mode="json"))


class IncidentLevel(ApiView):
    rights = {"post": "change_incidents"}
    routed_by = "incident_id"

    async def post(self, request: Request, incident_id: str) -> Response:
        w = self.whistle
        incident = incident_or_404(w, incident_id, request["caller"])
        body = await self.read_model(request, LevelRequest, "level change")
        by = self.person(request, body.by)
        if body.level == incident["level"]:
            raise Refusal(409, f"incident {incident_id} is at level {body.level} already",
                          problem("level", body.level))
        update = IncidentUpdate(update_id=uuid.uuid4().hex, incident_id=incident_id,
                                action="set_level", level=body.level, by=by,
                                note=body.note, at=w.clock())
        changed = await self.submit(topics.INCIDENT_UPDATES, incident_id, update.update_id,
                                    dump(update), "level", ("incident_id", incident_id))
        return self.reply(changed.model_dump(mode="json"))


ROUTES: list[Route] = [
    Route("/api/v1/alarms", Alarms),
    Route("/api/v1/incidents", Incidents),
    Route("/api/v1/incidents/{incident_id}", OneIncident),
    Route("/api/v1/incidents/{incident_id}/timeline", IncidentTimeline),
    Route("/api/v1/tasks", Tasks),
    Route("/api/v1/tasks/{task_id}/{action}", TaskAction),
    Route("/api/v1/incidents/{incident_id}/level", IncidentLevel),
]
"""The API's paths and their views (`streams.app` mounts them, with the others')."""
