"""The duty officer's hand (值班员), on the worker that holds the incident: open an incident from
a call (社区派单), add a task (加派), re-assign (转派) or cancel a task, blow the whistle (吹哨).

    POST /api/v1/incidents                        {"site_id", "kind", "description", "level",
                                                   "playbook", "reporter"}  -> 201 the incident
    POST /api/v1/incidents/{incident_id}/tasks    {"department", "action", "ack_within",
                                                   "complete_within", "note"} -> 201 the task
    POST /api/v1/tasks/{task_id}/reassign         {"department", "action"?, "note"} -> 201
    POST /api/v1/tasks/{task_id}/cancel           {"note"} -> 200 the task, cancelled
    POST /api/v1/incidents/{incident_id}/whistle  {"departments": [...], "reason", "within"?}
                                                   -> 201 {"incident", "tasks": [summons]}
    POST /api/v1/drills                           {"site_id", "playbook", "kind", "level",
                                                   "description"} -> 201 the drill's incident

Each is checked here first (404 unknown, 409 closed or finished, 422 naming the field), then
applied by the incident-updates agent (`agents.logic.command`), which answers with what it
did; nothing is half-done. Every change records the token's person.

    >>> httpx.post(f"{url}/api/v1/tasks/{task}/reassign", headers=admin,
    ...            json={"department": "enforcement", "note": "供电所无权处置"}).json()["replaces"]
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp.web import Request
from faust.web import Response
from pydantic import ValidationError

from agents.logic.incidents import BY_HAND, IncidentStep
from schemas import (
    AddTaskRequest,
    Alarm,
    CancelTaskRequest,
    DrillRequest,
    Incident,
    IncidentUpdate,
    OpenIncidentRequest,
    ReassignRequest,
    Task,
    WhistleRequest,
    topics,
)
from schemas.codec import dump, error_details
from streams.http.errors import Refusal, problem
from streams.http.views import ApiView, Route

__all__ = ["ROUTES", "open_by_hand"]


def _department(view: ApiView, department: str, loc: list[Any]) -> None:
    if department not in view.whistle.departments:
        raise Refusal(422, f"no department {department}", [{"loc": loc, "msg": "unknown"}])


def _open_incident(view: ApiView, request: Request, incident_id: str) -> dict:
    stored = view.whistle.tables.incidents.get(incident_id)
    if stored is None:
        raise Refusal(404, f"no incident {incident_id}", problem("incident_id", "unknown"))
    if stored["status"] == "closed":
        raise Refusal(409, f"incident {incident_id} is closed", problem("status", "closed"))
    return stored


def _task(view: ApiView, task_id: str) -> Task:
    stored = view.whistle.tables.tasks.get(task_id)
    if stored is None:
        raise Refusal(404, f"no task {task_id}", problem("task_id", "unknown"))
    task = Task.model_validate(stored)
    if task.replaced_by is not None:
        raise Refusal(409, f"task {task_id} was re-assigned already (to {task.replaced_by})",
                      problem("replaced_by", task.replaced_by))
    if task.status in ("completed", "cancelled"):
        raise Refusal(409, f"task {task_id} is {task.status}: a finished task stays as it is",
                      problem("status", task.status))
    return task


async def _applied(view: ApiView, update: IncidentUpdate) -> IncidentStep:
    """Submit the update; the agent answers with its step (a replay of an update applied
    before answers with the incident only: 409, read it again)."""
    step = await view.submit(topics.INCIDENT_UPDATES, update.incident_id, update.update_id,
                             dump(update), "status", ("incident_id", update.incident_id))
    if not isinstance(step, IncidentStep):
        raise Refusal(409, f"update {update.update_id} was applied before; read the incident "
                           f"again", problem("update_id", update.update_id))
    return step


async def open_by_hand(view: ApiView, request: Request, drill: bool = False) -> Response:
    """社区派单: a report by phone, a grid worker or the community becomes an alarm on
    `whistle.alarms` (kind, site, description, reporter; what the officer chose under
    `attributes.dispatch`), triaged and matched as any alarm is. 201 with the incident it
    opened or joined, once this worker has it; 202 with the alarm's id when the incident is
    held by another worker or not applied within WHISTLE_UPDATE_TIMEOUT.

    A drill (演练, `POST /api/v1/drills`) is the same with `drill: true` on the alarm: it
    opens an incident of its own, never a real one's."""
    w = view.whistle
    body: OpenIncidentRequest | DrillRequest = (
        await view.read_model(request, DrillRequest, "drill") if drill
        else await view.read_model(request, OpenIncidentRequest, "report"))
    by = view.person(request, body.by)
    if w.registry.site(body.site_id) is None:
        raise Refusal(422, f"no site {body.site_id}; find it with GET /api/v1/sites?q=",
                      [{"loc": ["site_id"], "msg": "unknown"}])
    if body.playbook is not None and body.playbook not in w.library.current.by_id:
        raise Refusal(422, f"no playbook {body.playbook}", [{"loc": ["playbook"],
                                                             "msg": "unknown"}])
    now = w.clock()
    reporter = body.reporter if isinstance(body, OpenIncidentRequest) else None
    chosen = {"by": by, **({"level": body.level} if body.level else {}),
              **({"playbook": body.playbook} if body.playbook else {})}
    try:
        alarm = Alarm.model_validate({
            "alarm_id": f"{'drill' if drill else 'call'}-{uuid.uuid4().hex[:16]}",
            "kind": body.kind, "site_id": body.site_id,
            "occurred_at": getattr(body, "occurred_at", None) or now,
            "description": body.description or None,
            "reporter": (reporter.model_dump() if reporter  # a drill has no one to tell
                         else None if drill else {"name": by}),
            "attributes": {BY_HAND: chosen}, "received_at": now,
            **({"drill": True} if drill else {})}, context={"now": now})
    except ValidationError as exc:
        raise Refusal(422, "invalid report", error_details(exc)) from None
    key = f"alarm:{alarm.alarm_id}"
    waiter = asyncio.get_running_loop().create_future()
    w.waiters[key] = waiter
    try:
        await asyncio.wait_for(w.send_and_wait(topics.ALARMS, w.site(body.site_id).triage_key,
                                               dump(alarm)), w.settings.ingest_timeout)
    except Exception as exc:
        w.waiters.pop(key, None)
        raise Refusal(503, "the broker did not acknowledge the report; retry",
                      problem("broker", repr(exc)), {"Retry-After": "1"}) from None
    w.metrics.ingested.inc()
    try:
        _, incident = await asyncio.wait_for(waiter, w.settings.update_timeout)
    except TimeoutError:
        w.waiters.pop(key, None)
        return view.reply({"alarm_id": alarm.alarm_id, "incident_id": None}, status=202)
    assert isinstance(incident, Incident)
    return view.reply(incident.model_dump(mode="json"), status=201,
                      headers={"Location": f"/api/v1/incidents/{incident.incident_id}"})


class AddTask(ApiView):
    rights = {"post": "change_incidents"}
    routed_by = "incident_id"

    async def post(self, request: Request, incident_id: str) -> Response:
        _open_incident(self, request, incident_id)
        body = await self.read_model(request, AddTaskRequest, "task")
        _department(self, body.department, ["department"])
        update = IncidentUpdate(
            update_id=uuid.uuid4().hex, incident_id=incident_id, action="add_task",
            department=body.department, task_action=body.action, ack_within=body.ack_within,
            complete_within=body.complete_within, by=self.person(request, body.by),
            note=body.note, at=self.whistle.clock())
        step = await _applied(self, update)
        return self.reply(step.new_tasks[0].model_dump(mode="json"), status=201)


class ReassignTask(ApiView):
    rights = {"post": "change_incidents"}
    routed_by = "task_id"

    async def post(self, request: Request, task_id: str) -> Response:
        task = _task(self, task_id)
        body = await self.read_model(request, ReassignRequest, "re-assignment")
        _department(self, body.department, ["department"])
        if body.department == task.department and task.status != "rejected":
            raise Refusal(422, f"task {task_id} is {task.department}'s already",
                          [{"loc": ["department"], "msg": "the task's own department"}])
        update = IncidentUpdate(
            update_id=uuid.uuid4().hex, incident_id=task.incident_id, action="reassign",
            task_id=task_id, department=body.department, task_action=body.action,
            ack_within=body.ack_within, complete_within=body.complete_within,
            by=self.person(request, body.by), note=body.note, at=self.whistle.clock())
        step = await _applied(self, update)
        new = next(t for t in step.new_tasks if t.replaces == task_id)
        return self.reply(new.model_dump(mode="json"), status=201)


class CancelTask(ApiView):
    rights = {"post": "change_incidents"}
    routed_by = "task_id"

    async def post(self, request: Request, task_id: str) -> Response:
        task = _task(self, task_id)
        body = await self.read_model(request, CancelTaskRequest, "cancellation")
        update = IncidentUpdate(
            update_id=uuid.uuid4().hex, incident_id=task.incident_id, action="cancel_task",
            task_id=task_id, by=self.person(request, body.by), note=body.note,
            at=self.whistle.clock())
        step = await _applied(self, update)
        done = next(t for t in step.changed_tasks if t.task_id == task_id)
        return self.reply(done.model_dump(mode="json"))


class BlowWhistle(ApiView):
    rights = {"post": "change_incidents"}
    routed_by = "incident_id"

    async def post(self, request: Request, incident_id: str) -> Response:
        _open_incident(self, request, incident_id)
        body = await self.read_model(request, WhistleRequest, "whistle")
        for i, department in enumerate(body.departments):
            _department(self, department, ["departments", i])
        update = IncidentUpdate(
            update_id=uuid.uuid4().hex, incident_id=incident_id, action="whistle",
            departments=body.departments, ack_within=body.within,
            by=self.person(request, body.by), note=body.reason, at=self.whistle.clock())
        step = await _applied(self, update)
        return self.reply({"incident": step.incident.model_dump(mode="json"),
                           "tasks": [t.model_dump(mode="json") for t in step.new_tasks]},
                          status=201)


class Drills(ApiView):
    rights = {"post": "change_incidents"}

    async def post(self, request: Request) -> Response:
        return await open_by_hand(self, request, drill=True)


ROUTES: list[Route] = [
    Route("/api/v1/drills", Drills),
    Route("/api/v1/incidents/{incident_id}/tasks", AddTask),
    Route("/api/v1/tasks/{task_id}/reassign", ReassignTask),
    Route("/api/v1/tasks/{task_id}/cancel", CancelTask),
    Route("/api/v1/incidents/{incident_id}/whistle", BlowWhistle),
]
"""Mounted before the API's `/api/v1/tasks/{task_id}/{action}`, which would take them."""
