"""Escalation agent: `whistle.escalations` -> the task marked overdue, the 督办 notices, the
level raised, and `task_overdue` / `delivery_failed` / `escalated` on the timeline.

Requests come from the deadline timer (`timers`) and from webhook senders that gave up. The
decision is `deadlines.escalate`; the task records the ids it applied, so a request sent
twice changes nothing twice, and a replay sends the same snapshots and entries again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.logic.deadlines import escalate
from agents.logic.incidents import IncidentStep
from schemas import Escalation, Incident, Task, topics
from schemas.codec import dump

if TYPE_CHECKING:
    from streams.worker import Whistle

__all__ = ["register"]


async def handle(w: Whistle, esc: Escalation, message) -> None:
    stored = w.tables.incidents.get(esc.incident_id)
    if stored is None:
        await w.dead_letter(message, f"unknown incident {esc.incident_id}")
        return
    incident = Incident.model_validate(stored)
    task = None
    if esc.task_id is not None:
        if w.tables.tasks.get(esc.task_id) is None:
            await w.dead_letter(message, f"unknown task {esc.task_id}")
            return
        task = Task.model_validate(w.tables.tasks[esc.task_id])
    w.escalating.pop(esc.escalation_id, None)
    names = {d: dept.name for d, dept in w.departments.items()}
    held = {t.task_id: t for t in w.tasks_of(incident)}
    out = escalate(incident, task, esc, w.rules_of(task), names, held)
    if not out.changed:  # applied before (or answered meanwhile): send again what it sent
        again = [] if out.task is None else [out.task, *(
            t for t in held.values() if t.notice_of == out.task.task_id)]
        await w.publish(None, again, out.entries)
        return
    w.metrics.escalations.labels(cause=esc.cause).inc()
    tasks = [t for t in (out.task, *out.notices) if t is not None]
    await w.publish(out.incident, tasks, out.entries)
    for update in out.updates:
        await w.send(topics.INCIDENT_UPDATES, update.incident_id, dump(update))
    # a missed deadline may be what the playbook blows the whistle on (`overdue: n`)
    step = IncidentStep(Incident.model_validate(w.tables.incidents[esc.incident_id]),
                        changed=False)
    w.call_in(step)
    if step.changed:
        step.incident = step.incident.model_copy(update={"revision": step.incident.revision + 1})
        await w.apply(step)


def register(w: Whistle) -> None:
    w.stage(w.topics.escalations, "escalation", Escalation, handle)
