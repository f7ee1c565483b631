"""The after-action timeline (事后倒查): every step of an incident, in time order."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.common import Identifier, Timestamp
from schemas.incident import Incident

__all__ = ["ENTRY_TYPES", "EntryType", "Timeline", "TimelineEntry"]

EntryType = Literal[
    "alarm_received", "incident_opened", "playbook_matched", "task_dispatched",
    "task_acknowledged", "task_started", "task_completed", "task_rejected", "task_progress",
    "task_cancelled", "task_overdue", "incident_contained",
    "escalated", "level_changed", "incident_confirmed", "incident_merged", "incident_reopened",
    "incident_closed", "delivery_failed", "reporter_feedback", "task_reassigned",
    "whistle_blown", "alarm_silenced",
]
ENTRY_TYPES: tuple[str, ...] = EntryType.__args__  # type: ignore[attr-defined]


class TimelineEntry(BaseModel):
    """One step. `entry_id` is derived from what happened, so a replayed step is recorded once."""

    model_config = ConfigDict(extra="forbid")

    entry_id: str
    incident_id: Identifier
    at: Timestamp
    type: EntryType
    department: str | None = None
    task_id: str | None = None
    alarm_id: str | None = None
    by: str | None = None
    detail: dict[str, Any] | None = None


class Timeline(BaseModel):
    """The contract's JSON form: the incident and its entries in time order."""

    incident: Incident
    entries: list[TimelineEntry]
