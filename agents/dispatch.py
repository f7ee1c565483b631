"""Dispatch agent: `whistle.triaged` -> incidents, tasks on `whistle.tasks.<department>`,
timeline entries.

Opens the incident (match a playbook, plan the tasks) or attaches the alarm to it; see
`incidents.on_triaged`. A replayed alarm re-sends the current snapshots, which consumers drop
by (task_id, revision) if they already have them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from schemas import Incident, Task, Triaged
from streams.library import PlaybookLibrary

from .incidents import on_triaged, opening_entries

if TYPE_CHECKING:
    from streams.app import Whistle

__all__ = ["register"]

_END_OF_TIME = datetime(9999, 1, 1, tzinfo=timezone.utc)


async def handle(w: "Whistle", triaged: Triaged, message) -> None:
    stored = w.tables.incidents.get(triaged.incident_id)
    current = Incident.model_validate(stored) if stored else None
    now = w.clock()
    step = on_triaged(current, triaged, w.library.current, now)
    incident = step.incident
    if current is None:  # keep the version it was matched with, for steps added later
        key = PlaybookLibrary.key(incident.playbook)
        if w.tables.playbooks.get(key) is None:
            w.tables.playbooks[key] = w.library.version(incident.playbook).playbook.model_dump(
                mode="json")
    entries = step.entries
    if step.changed:
        tasks = step.new_tasks
    else:  # a replay: send again what an earlier run may not have sent before it died
        tasks = [Task.model_validate(w.tables.tasks[t]) for t in incident.task_ids
                 if w.tables.tasks.get(t) is not None]
        loaded = w.library.version(incident.playbook)
        if incident.alarm_ids[0] == triaged.alarm.alarm_id and loaded is not None:
            entries = [*entries, *opening_entries(
                incident, triaged.site, loaded, "matched when the incident opened",
                [t for t in tasks if t.created_at == incident.opened_at], incident.opened_at)]
    await w.publish(incident, tasks, entries)
    if step.new_tasks:
        for task in step.new_tasks:
            w.metrics.tasks.labels(department=task.department).inc()
        received = triaged.alarm.received_at
        if received is not None:
            w.metrics.alarm_to_task.observe(max(0.0, (now - received).total_seconds()))


def register(w: "Whistle") -> None:
    # the alarm inside was checked at ingest and by triage; replays may come much later
    w.stage(w.topics.triaged, "dispatch", Triaged, handle, lambda m: {"now": _END_OF_TIME})
