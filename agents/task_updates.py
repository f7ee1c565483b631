"""Task-updates agent: `whistle.task-updates` -> the task's new snapshot on its department's
topic and a timeline entry; the 督办 notices the answer settles are completed; a rejection
(退回) sends the lead a notice to re-assign or cancel the task. The state
machine is `taskstate`; this agent is its only writer of department answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.logic.command import dispatched, rejection_notice
from agents.logic.deadlines import cleared_notices
from agents.logic.incidents import on_task_changed
from agents.logic.taskstate import ENTRY_TYPE_OF, IllegalTransition, apply_update
from agents.logic.timelines import entry
from schemas import Incident, Task, TaskUpdate, TimelineEntry, topics
from schemas.codec import dump

if TYPE_CHECKING:
    from streams.worker import Whistle

__all__ = ["register"]


async def handle(w: Whistle, update: TaskUpdate, message) -> None:
    stored = w.tables.tasks.get(update.task_id)
    if stored is None:
        await w.dead_letter(message, f"unknown task {update.task_id}")
        w.answer(update.update_id, "unknown", None)
        return
    task = Task.model_validate(stored)
    if task.last_update_id == update.update_id:  # a replay: send the snapshot again
        await w.send(topics.task_topic(task.department), task.incident_id, dump(task))
        w.answer(update.update_id, "ok", task)
        return
    try:
        task = apply_update(task, update)
    except IllegalTransition as exc:  # lost a race with another update: nothing changes
        w.answer(update.update_id, "conflict", str(exc))
        return
    w.metrics.task_updates.labels(department=task.department, action=update.action).inc()
    if update.action == "ack" and task.notice_of is None:
        w.metrics.ack_seconds.labels(department=task.department).observe(
            max(0.0, (update.at - task.created_at).total_seconds()))
    names = {d: dept.name for d, dept in w.departments.items()}
    incident = Incident.model_validate(w.tables.incidents[task.incident_id])
    progress = update.action == "progress"  # a note on the way: it answers no deadline
    settled = [] if progress else cleared_notices(task, w.tasks_of(incident), update.at, names)
    notice = (rejection_notice(incident, task, w.lead, names, update.at)
              if update.action == "reject" else None)
    told: list[TimelineEntry] = []
    if notice is not None and notice.task_id not in incident.task_ids:  # 退回: the lead hears
        settled.append(notice)
        told.append(dispatched(notice, update.at, None, notice_of=notice.notice_of))
        incident = incident.model_copy(update={
            "task_ids": [*incident.task_ids, notice.task_id], "revision": incident.revision + 1})
    await w.publish(incident if told else None, [task, *settled], [entry(
        task.incident_id, ENTRY_TYPE_OF[update.action], update.at, task_id=task.task_id,
        department=task.department, by=update.by, revision=task.revision,
        detail={"status": task.status, **({"note": update.note} if update.note else {}),
                **({"outcome": task.outcome} if task.outcome else {})}),
        *told, *_settled_entries([n for n in settled if n is not notice])])
    w.answer(update.update_id, "ok", task)
    if not progress:
        await _follow_up(w, task)


def _settled_entries(notices: list[Task]) -> list:
    return [entry(n.incident_id, "task_completed", n.updated_at, task_id=n.task_id,
                  department=n.department, by="whistle", revision=n.revision,
                  detail={"status": n.status, "note": n.note}) for n in notices]


async def _follow_up(w: Whistle, task: Task) -> None:
    """What the change means for the incident: a verdict, waiting steps, closing."""
    incident = Incident.model_validate(w.tables.incidents[task.incident_id])
    loaded = w.library.version(incident.playbook)
    if loaded is None:
        w.app.log.error("incident %s: playbook %s@%s is no longer known; its next steps "
                        "cannot be planned", incident.incident_id, incident.playbook.id,
                        incident.playbook.content_hash)
        return
    step = on_task_changed(incident, task, loaded, w.site(incident.site_id), w.tasks_of(incident),
                           w.clock())
    if step.changed:
        await w.apply(step)


def register(w: Whistle) -> None:
    w.stage(w.topics.task_updates, "task-updates", TaskUpdate, handle)
