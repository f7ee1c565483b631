"""The Incident: one real event at one site, which alarms join and tasks answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Identifier, Level, Timestamp

__all__ = ["INCIDENT_STATUSES", "Incident", "IncidentStatus", "IncidentUpdate", "LevelRequest",
           "PlaybookRef"]

IncidentStatus = Literal["open", "contained", "closed"]
INCIDENT_STATUSES: tuple[str, ...] = ("open", "contained", "closed")


class PlaybookRef(BaseModel):
    """Which playbook, in which version, an incident was matched with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    version: str
    content_hash: str = ""


class Incident(BaseModel):
    """The contract's Incident. `revision` grows by one with every change, so a consumer of
    `whistle.incidents` that sees the same (incident_id, revision) twice drops the second."""

    model_config = ConfigDict(extra="forbid")

    incident_id: Identifier
    status: IncidentStatus = "open"
    level: Level
    site_id: Identifier
    kind: str
    hazard: str
    confirmed: bool = True
    playbook: PlaybookRef
    alarm_ids: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)
    opened_at: Timestamp
    closed_at: Timestamp | None = None
    last_alarm_at: Timestamp
    revision: int = 1
    last_update_id: str | None = None

    def with_alarm(self, alarm_id: str, occurred_at: datetime) -> "Incident":
        """A copy with one more alarm attached (the caller checks it is not attached yet)."""
        return self.model_copy(update={
            "alarm_ids": [*self.alarm_ids, alarm_id],
            "last_alarm_at": max(self.last_alarm_at, occurred_at),
            "revision": self.revision + 1,
        })


class LevelRequest(BaseModel):
    """The body of `POST /api/v1/incidents/{incident_id}/level`."""

    model_config = ConfigDict(extra="forbid")

    level: Level
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=4000)


class IncidentUpdate(BaseModel):
    """A change to an incident, carried on `whistle.incident-updates` (key: incident_id)."""

    model_config = ConfigDict(extra="forbid")

    update_id: Identifier
    incident_id: Identifier
    action: Literal["set_level"]
    level: Level
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=4000)
    at: Timestamp
