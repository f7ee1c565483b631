"""Dispatch agent: `whistle.triaged` -> incidents, tasks on `whistle.tasks.<department>`,
timeline entries; and the same for the urgent lane's `whistle.triaged.urgent`.

Opens the incident (match a playbook, plan the tasks) or attaches the alarm to it; see
`incidents.on_triaged`. A replayed alarm re-sends the current snapshots, which consumers drop
by (task_id, revision) if they already have them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agents.logic.incidents import on_triaged, opening_entries, silenced_entry
from playbooks.coordinator import PlaybookLibrary
from schemas import Incident, Triaged

if TYPE_CHECKING:
    from streams.worker import Whistle

__all__ = ["register"]

_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


async def handle(w: Whistle, triaged: Triaged, message) -> None:
    if triaged.action == "silenced":  # held back: on the silence's timeline, nothing else
        await w.record([silenced_entry(triaged, w.clock())])
        return
    stored = w.tables.incidents.get(triaged.incident_id)
    current = Incident.model_validate(stored) if stored else None
    now = w.clock()
    loaded = w.library.version(current.playbook) if current else None
    step = on_triaged(current, triaged, w.library.current, loaded,
                      lambda: w.tasks_of(current), now)
    incident = step.incident
    if current is None:  # keep the version it was matched with, for steps added later
        key = PlaybookLibrary.key(incident.playbook)
        if w.tables.playbooks.get(key) is None:
            opened = w.library.version(incident.playbook)
            assert opened is not None  # matched just now, in the set in force: the library's
            w.tables.playbooks[key] = opened.playbook.model_dump(mode="json")
    if not step.changed:  # a replay: send again what an earlier run may not have sent
        tasks = w.tasks_of(incident)
        step.new_tasks = tasks
        loaded = w.library.version(incident.playbook)
        if incident.alarm_ids[0] == triaged.alarm.alarm_id and loaded is not None:
            step.entries += opening_entries(
                incident, triaged.site, loaded, "matched when the incident opened",
                [t for t in tasks if t.created_at == incident.opened_at], incident.opened_at)
    await w.apply(step)
    w.answer(f"alarm:{triaged.alarm.alarm_id}", "ok", step.incident)  # a report by hand
    if step.changed and step.new_tasks:
        received = triaged.alarm.received_at
        if received is not None:
            w.metrics.alarm_to_task.observe(max(0.0, (now - received).total_seconds()))


def register(w: Whistle) -> None:
    # the alarm inside was checked at ingest and by triage; replays may come much later
    w.stage(w.topics.triaged, "dispatch", Triaged, handle, lambda m: {"now": _END_OF_TIME})
    w.stage(w.topics.triaged_urgent, "dispatch-urgent", Triaged, handle,
            lambda m: {"now": _END_OF_TIME})
