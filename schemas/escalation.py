"""Escalations, webhook deliveries and the feedback to the people who reported an incident.

    >>> Escalation.overdue_id("inc-1.police", "ack", 0, 1)
    'inc-1.police:ack:0:1'
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.alarm import Reporter
from schemas.common import DepartmentId, Identifier, Timestamp, plain_json

__all__ = ["CAUSES", "Cause", "DeliveryAttempt", "Escalation", "Feedback", "FeedbackItem",
           "Overdue"]

Overdue = Literal["ack", "complete"]
"""Which deadline a task missed: `ack_due` or `complete_due`."""

Cause = Literal["ack_overdue", "complete_overdue", "delivery_failed"]
CAUSES: tuple[str, ...] = ("ack_overdue", "complete_overdue", "delivery_failed")


class Escalation(BaseModel):
    """A request to escalate one task, on `whistle.escalations` (key: incident_id). Sent by the
    deadline timer (a task missed `ack_due` or `complete_due`: the n-th firing of a playbook
    rule) or by a webhook sender that gave up. The id is deterministic, and the task records
    the ids it applied, so a request sent twice (a restart, a replay) escalates once."""

    model_config = ConfigDict(extra="forbid")

    escalation_id: Identifier
    incident_id: Identifier
    task_id: Identifier | None = Field(default=None, description="none for a feedback that "
                                                                  "could not be delivered")
    cause: Cause
    rule: int | None = Field(default=None, ge=0, description="index in the step's escalate")
    n: int = Field(default=1, ge=1, description="the how-many-th firing of the rule")
    due: Timestamp | None = None
    at: Timestamp
    detail: dict[str, Any] = Field(default_factory=dict)

    @field_validator("detail")
    @classmethod
    def _plain(cls, value: dict[str, Any]) -> dict[str, Any]:
        return plain_json(value)

    @staticmethod
    def overdue_id(task_id: str, which: str, rule: int, n: int) -> str:
        return f"{task_id}:{which}:{rule}:{n}"

    @staticmethod
    def delivery_id(target: str, subject: str) -> str:
        """For a delivery that failed: `subject` is `<task_id>:<revision>` or a feedback id."""
        return f"{subject}:delivery:{target}"


class DeliveryAttempt(BaseModel):
    """One POST to a webhook, as recorded on `whistle.deliveries` (key: target)."""

    model_config = ConfigDict(extra="forbid")

    delivery_id: str = Field(description="<target>:<task_id>:<revision> or "
                                         "<target>:<feedback_id>")
    target: str
    incident_id: Identifier
    task_id: str | None = None
    attempt: int = Field(ge=1)
    url: str
    at: Timestamp
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = Field(ge=0)
    result: Literal["delivered", "retry", "failed"]


class FeedbackItem(BaseModel):
    """What one department did."""

    model_config = ConfigDict(extra="forbid")

    department: DepartmentId
    department_name: str
    action: str
    status: str
    by: str | None = None
    note: str | None = None
    at: Timestamp


class Feedback(BaseModel):
    """接诉即办's 反馈: when an incident closes, what was done, for the people who reported it.
    On `whistle.feedback` (key: incident_id), the timeline (`reporter_feedback`) and the
    `feedback` webhook."""

    model_config = ConfigDict(extra="forbid")

    feedback_id: str
    incident_id: Identifier
    site_id: Identifier
    site_name: str = ""
    address: str = ""
    reporters: list[Reporter]
    alarm_ids: list[str]
    closed_at: Timestamp
    close_reason: str
    done: list[FeedbackItem]
    message: str
