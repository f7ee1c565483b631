"""The task state machine (pure), as an explicit table.

    dispatched   --ack-->      acknowledged
    dispatched   --start-->    in_progress      (a crew that turns out at once)
    dispatched   --reject-->   rejected
    acknowledged --start-->    in_progress
    acknowledged --complete--> completed
    acknowledged --reject-->   rejected
    in_progress  --complete--> completed
    acknowledged, in_progress --progress--> the same status (续报: a note on the way)
    completed, rejected: final
    dispatched, acknowledged, in_progress --(its incident closed by hand)--> cancelled: final

    >>> apply_update(task, update).status
    'acknowledged'
"""

from __future__ import annotations

from datetime import datetime

from schemas import FINAL_STATUSES, Task, TaskUpdate

__all__ = ["ENTRY_TYPE_OF", "TRANSITIONS", "IllegalTransition", "apply_update", "cancel",
           "next_status", "settled"]

TRANSITIONS: dict[str, dict[str, str]] = {
    "dispatched": {"ack": "acknowledged", "start": "in_progress", "reject": "rejected"},
    "acknowledged": {"start": "in_progress", "complete": "completed", "reject": "rejected",
                     "progress": "acknowledged"},
    "in_progress": {"complete": "completed", "progress": "in_progress"},
    "completed": {},
    "rejected": {},
    "cancelled": {},
}

ENTRY_TYPE_OF = {"ack": "task_acknowledged", "start": "task_started",
                 "complete": "task_completed", "reject": "task_rejected",
                 "progress": "task_progress"}
"""The timeline entry each action writes."""


class IllegalTransition(ValueError):
    """The action is not allowed from the task's current status (HTTP 409)."""

    def __init__(self, status: str, action: str) -> None:
        allowed = ", ".join(TRANSITIONS.get(status, {})) or "nothing (final)"
        super().__init__(f"cannot {action} a task that is {status}; allowed: {allowed}")
        self.status, self.action = status, action


def next_status(status: str, action: str) -> str:
    """The status after `action`, or IllegalTransition."""
    try:
        return TRANSITIONS[status][action]
    except KeyError:
        raise IllegalTransition(status, action) from None


def apply_update(task: Task, update: TaskUpdate) -> Task:
    """The task after the update (a new object), or IllegalTransition."""
    return task.model_copy(update={
        "status": next_status(task.status, update.action),
        "updated_at": update.at,
        "revision": task.revision + 1,
        "by": update.by,
        "note": update.note or None,
        "last_update_id": update.update_id,
        "outcome": update.outcome or task.outcome,
    })


def cancel(task: Task, at: datetime, by: str, why: str) -> Task | None:
    """The task cancelled because its incident was closed by hand, or None if it is over
    already (a department's answer is never undone)."""
    if task.status in FINAL_STATUSES:
        return None
    return task.model_copy(update={"status": "cancelled", "updated_at": at,
                                   "revision": task.revision + 1, "by": by, "note": why})


def settled(task: Task) -> bool:
    """Whether a task needs nothing more for its incident to close: completed, cancelled, or
    rejected and taken over by another task (a rejection nobody took over keeps the incident
    open: the lead must re-assign or cancel it)."""
    return task.status in ("completed", "cancelled") or (task.status == "rejected"
                                                         and task.replaced_by is not None)
