"""The Incident: one real event at one site, which alarms join and tasks answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Identifier, Level, Timestamp

__all__ = ["INCIDENT_STATUSES", "Incident", "IncidentStatus", "PlaybookRef"]

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

    def with_alarm(self, alarm_id: str, occurred_at: datetime) -> "Incident":
        """A copy with one more alarm attached (the caller checks it is not attached yet)."""
        return self.model_copy(update={
            "alarm_ids": [*self.alarm_ids, alarm_id],
            "last_alarm_at": max(self.last_alarm_at, occurred_at),
            "revision": self.revision + 1,
        })
