"""Incident-updates agent: `whistle.incident-updates` -> the changed incident, the steps the
change makes ready, and the timeline entries. Changes: a new level (a person, or an escalation
raising it), confirmation by the positive alarm sequence's deadlines (the PAS timer), a merge
into another incident (which may arrive before the incident it merges has opened: it waits);
and the duty officer's hand: a task added, re-assigned or cancelled, the whistle blown."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agents.logic.command import on_command
from agents.logic.incidents import SameLevel, change_level, on_update
from schemas import LEVELS, Incident, IncidentUpdate, Task, topics
from schemas.codec import dump

if TYPE_CHECKING:
    from streams.worker import Whistle

__all__ = ["COMMANDS", "MERGE_ATTEMPTS", "register"]

COMMANDS = ("add_task", "reassign", "cancel_task", "whistle")
"""The duty officer's changes (`agents.logic.command`): answered with the whole step."""

MERGE_ATTEMPTS = 60
"""How often a merge waits for its incident to open (about 40 s in all) before it is a dead
letter."""


async def handle(w: Whistle, update: IncidentUpdate, message) -> None:
    stored = w.tables.incidents.get(update.incident_id)
    if stored is None and update.action == "merge_into" and update.attempt < MERGE_ATTEMPTS:
        # the merge can overtake the incident's own opening: both are on their way (the
        # opening is on whistle.triaged, sent first by triage) on different partitions
        await asyncio.sleep(min(1.0, 0.05 * (update.attempt + 1)))
        again = update.model_copy(update={"attempt": update.attempt + 1})
        await w.send(topics.INCIDENT_UPDATES, update.incident_id, dump(again))
        return
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
    tasks = w.tasks_of(incident)
    site = w.site(incident.site_id)
    if update.action == "raise_level" and LEVELS.index(update.level) >= LEVELS.index(
            incident.level):  # as severe already (a person, or an earlier escalation)
        w.answer(update.update_id, "ok", incident)
        return
    if update.action in COMMANDS:
        step = on_command(incident, update, loaded, site, tasks, w.report_within, w.clock())
        if not step.changed:
            w.answer(update.update_id, "conflict", _why_not(incident, update, tasks))
            return
        await w.apply(step)
        w.answer(update.update_id, "ok", step)
        return
    if update.action in ("set_level", "raise_level"):
        try:
            step = change_level(incident, update, loaded, site, tasks, w.clock())
        except SameLevel as exc:
            w.answer(update.update_id, "conflict", str(exc))
            return
    else:
        step = on_update(incident, update, loaded, site, tasks, w.clock())
        if not step.changed:  # a person asked (close, contain): say why nothing changed
            w.answer(update.update_id, "conflict", f"incident {incident.incident_id} is "
                                                   f"{incident.status} already")
            return
    await w.apply(step)
    w.answer(update.update_id, "ok", step.incident)


def _why_not(incident: Incident, update: IncidentUpdate, tasks: list[Task]) -> str:
    if incident.status == "closed":
        return f"incident {incident.incident_id} is closed"
    if update.action == "whistle":
        return "every department named is called in already and has not finished"
    task = next((t for t in tasks if t.task_id == update.task_id), None)
    if task is None:
        return f"no task {update.task_id}"
    if task.replaced_by is not None:
        return f"task {task.task_id} was re-assigned already (to {task.replaced_by})"
    return f"task {task.task_id} is {task.status}"


def register(w: Whistle) -> None:
    w.stage(w.topics.incident_updates, "incident-updates", IncidentUpdate, handle)
