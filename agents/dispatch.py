"""Dispatch agent: `whistle.triaged` -> incidents, tasks on `whistle.tasks.<department>`,
timeline entries.

Opens the incident (match a playbook, plan the tasks) or attaches the alarm to it; see
`incidents.on_triaged`. A replayed alarm re-sends the current snapshots, which consumers drop
by (task_id, revision) if they already have them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import Incident, Task, Triaged
from streams import topics
from streams.codec import Rejected, decode, dump

from .incidents import on_triaged

if TYPE_CHECKING:
    from streams.app import Whistle

__all__ = ["register"]


async def handle(w: "Whistle", message) -> None:
    triaged = decode(Triaged, message.value, {"now": w.clock()})
    if isinstance(triaged, Rejected):
        await w.dead_letter(message, triaged.reason)
        return
    iid = triaged.incident_id
    stored = w.tables.incidents.get(iid)
    current = Incident.model_validate(stored) if stored else None
    now = w.clock()
    step = on_triaged(current, triaged, w.playbooks, now)
    incident = step.incident
    if step.changed:
        w.tables.incidents[iid] = incident.model_dump(mode="json")
        for task in step.new_tasks:
            w.tables.tasks[task.task_id] = task.model_dump(mode="json")
        tasks = step.new_tasks
    else:
        tasks = [Task.model_validate(w.tables.tasks[t]) for t in incident.task_ids
                 if w.tables.tasks.get(t) is not None]
    await w.send(topics.INCIDENTS, iid, dump(incident))
    for task in tasks:
        await w.send(topics.task_topic(task.department), iid, dump(task))
    for entry in step.entries:
        await w.send(topics.TIMELINE, iid, dump(entry))
    if step.new_tasks:
        for task in step.new_tasks:
            w.metrics.tasks.labels(department=task.department).inc()
        received = triaged.alarm.received_at
        if received is not None:
            w.metrics.alarm_to_task.observe(max(0.0, (now - received).total_seconds()))


def register(w: "Whistle") -> None:
    w.stage(w.topics.triaged, "dispatch", handle)
