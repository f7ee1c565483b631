"""Incident-updates agent: `whistle.incident-updates` -> the incident with its new level, the
steps that level reaches, and the timeline entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import Incident, IncidentUpdate, Task

from .incidents import SameLevel, change_level

if TYPE_CHECKING:
    from streams.app import Whistle

__all__ = ["register"]


async def handle(w: "Whistle", update: IncidentUpdate, message) -> None:
    stored = w.tables.incidents.get(update.incident_id)
    if stored is None:
        await w.dead_letter(message, f"unknown incident {update.incident_id}")
        w.answer(update.update_id, "unknown", None)
        return
    incident = Incident.model_validate(stored)
    if incident.last_update_id == update.update_id:  # a replay: send the snapshot again
        await w.publish(incident)
        w.answer(update.update_id, "ok", incident)
        return
    loaded = w.library.version(incident.playbook)
    if loaded is None:
        await w.dead_letter(message, f"playbook {incident.playbook.id}@"
                                     f"{incident.playbook.content_hash} is no longer known")
        w.answer(update.update_id, "unknown", None)
        return
    tasks = [Task.model_validate(w.tables.tasks[t]) for t in incident.task_ids]
    try:
        step = change_level(incident, update, loaded, w.site(incident.site_id), tasks, w.clock())
    except SameLevel as exc:
        w.answer(update.update_id, "conflict", str(exc))
        return
    await w.publish(step.incident, step.new_tasks, step.entries)
    for task in step.new_tasks:
        w.metrics.tasks.labels(department=task.department).inc()
    w.answer(update.update_id, "ok", step.incident)


def register(w: "Whistle") -> None:
    w.stage(w.topics.incident_updates, "incident-updates", IncidentUpdate, handle)
