"""Tasks (what one department must do for one incident) and the updates departments send."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.common import DepartmentId, Identifier, Level, Timestamp, field_error, person_field

__all__ = [
    "FINAL_STATUSES",
    "TASK_ACTIONS",
    "TASK_STATUSES",
    "Task",
    "TaskAction",
    "TaskStatus",
    "TaskUpdate",
    "TaskUpdateRequest",
    "Outcome",
]

TaskStatus = Literal["dispatched", "acknowledged", "in_progress", "completed", "rejected",
                     "cancelled"]
TASK_STATUSES: tuple[str, ...] = ("dispatched", "acknowledged", "in_progress", "completed",
                                  "rejected", "cancelled")
FINAL_STATUSES: tuple[str, ...] = ("completed", "rejected", "cancelled")
"""A task in one of these is over: no deadline binds it, no department's action changes it.
`cancelled`: its incident was closed by hand while it was open, or the duty officer cancelled
it (a rejected task too) or re-assigned it to another department."""
TaskAction = Literal["ack", "start", "complete", "reject", "progress"]
TASK_ACTIONS: tuple[str, ...] = ("ack", "start", "complete", "reject", "progress")
"""`progress` (续报): a note on a task under way; its status stays."""
Outcome = Literal["confirmed", "false_alarm"]
"""What a verification found on site."""


class Task(BaseModel):
    """The contract's Task, plus `revision` (grows with every change: a consumer that sees the
    same (task_id, revision) twice drops the second) and the context a console shows."""

    model_config = ConfigDict(extra="forbid")

    task_id: Identifier
    incident_id: Identifier
    department: DepartmentId
    step: str
    action: str
    status: TaskStatus = "dispatched"
    ack_due: Timestamp
    complete_due: Timestamp
    created_at: Timestamp
    updated_at: Timestamp
    revision: int = 1
    site_id: Identifier
    level: Level
    unit: str | None = None
    verification: bool = False
    outcome: Outcome | None = None
    by: str | None = None
    note: str | None = None
    last_update_id: str | None = None
    site_name: str = ""
    address: str = ""
    overdue: list[Literal["ack", "complete"]] = Field(
        default_factory=list, description="the deadlines it missed (marked by the escalation "
                                          "agent)")
    escalations: list[str] = Field(default_factory=list,
                                   description="ids of the escalations applied to it")
    notice_of: str | None = Field(default=None, description="an escalation notice (督办): the "
                                                            "task it is about")
    notice_cause: Literal["ack_overdue", "complete_overdue", "delivery_failed",
                          "rejected"] | None = Field(
        default=None, description="why the notice: a deadline missed, a delivery failed, or "
                                  "(to the lead) the task was rejected")
    drill: bool | None = Field(default=None, description="演练: a drill's task, not a real "
                                                         "one (consoles, webhooks and streams "
                                                         "say so)")
    summons: bool = Field(default=False, description="a whistle's call (吹哨) to report for "
                                                     "duty (报到): acknowledging it is reporting")
    replaces: str | None = Field(default=None, description="re-assigned (转派): the task this "
                                                           "one takes over")
    replaced_by: str | None = Field(default=None, description="the task that took it over")


class TaskUpdateRequest(BaseModel):
    """The body of `POST /api/v1/tasks/{task_id}/ack|start|complete|reject|progress`."""

    model_config = ConfigDict(extra="forbid")

    by: str = person_field()
    note: str = Field(default="", max_length=4000)
    outcome: Outcome | None = Field(
        default=None, description="completing a verification task: what was found on site")


class TaskUpdate(BaseModel):
    """A department's change to a task, as carried on `whistle.task-updates` (key: incident_id).

    `update_id` makes a replayed update recognisable; a reject must say why."""

    model_config = ConfigDict(extra="forbid")

    update_id: Identifier
    task_id: Identifier
    incident_id: Identifier
    action: TaskAction
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=4000)
    outcome: Outcome | None = None
    at: Timestamp

    @model_validator(mode="after")
    def _reject_has_note(self) -> TaskUpdate:
        if self.action == "reject" and not self.note.strip():
            raise field_error("note", "missing", "a rejection needs a note saying why")
        if self.action == "progress" and not self.note.strip():
            raise field_error("note", "missing", "a progress report needs a note saying what")
        if self.outcome is not None and self.action != "complete":
            raise field_error("outcome", "value_error",
                              "only completing a verification task has an outcome")
        return self
