"""Task-updates agent: `whistle.task-updates` -> the task's new snapshot on its department's
topic and a timeline entry. The state machine is `taskstate`; this agent is its only writer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import Task, TaskUpdate
from streams import topics
from streams.codec import Rejected, decode, dump

from .taskstate import ENTRY_TYPE_OF, IllegalTransition, apply_update
from .timelines import entry

if TYPE_CHECKING:
    from streams.app import Whistle

__all__ = ["register"]


def _answer(w: "Whistle", update_id: str, outcome: str, value: object) -> None:
    """Tell a waiting HTTP request (on this worker) how its update went."""
    waiter = w.waiters.pop(update_id, None)
    if waiter is not None and not waiter.done():
        waiter.set_result((outcome, value))


async def handle(w: "Whistle", message) -> None:
    update = decode(TaskUpdate, message.value)
    if isinstance(update, Rejected):
        await w.dead_letter(message, update.reason)
        return
    stored = w.tables.tasks.get(update.task_id)
    if stored is None:
        await w.dead_letter(message, f"unknown task {update.task_id}")
        _answer(w, update.update_id, "unknown", None)
        return
    task = Task.model_validate(stored)
    if task.last_update_id == update.update_id:  # a replay: send the snapshot again
        await w.send(topics.task_topic(task.department), task.incident_id, dump(task))
        _answer(w, update.update_id, "ok", task)
        return
    try:
        task = apply_update(task, update)
    except IllegalTransition as exc:  # lost a race with another update: nothing changes
        _answer(w, update.update_id, "conflict", str(exc))
        return
    w.tables.tasks[task.task_id] = task.model_dump(mode="json")
    w.metrics.task_updates.labels(department=task.department, action=update.action).inc()
    await w.send(topics.task_topic(task.department), task.incident_id, dump(task))
    await w.send(topics.TIMELINE, task.incident_id, dump(entry(
        task.incident_id, ENTRY_TYPE_OF[update.action], update.at, task_id=task.task_id,
        department=task.department, by=update.by, revision=task.revision,
        detail={"status": task.status, **({"note": update.note} if update.note else {})})))
    _answer(w, update.update_id, "ok", task)


def register(w: "Whistle") -> None:
    w.stage(w.topics.task_updates, "task-updates", handle)
