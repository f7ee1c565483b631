"""The Incident: one real event at one site, which alarms join and tasks answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.alarm import Reporter
from schemas.common import (
    DepartmentId,
    Duration,
    Identifier,
    Level,
    Timestamp,
    field_error,
    person_field,
)

__all__ = ["CLOSE_REASONS", "CONFIRMATIONS", "INCIDENT_STATUSES", "CloseReason", "CloseRequest",
           "Confirmation", "ContainRequest", "Evidence", "Incident", "IncidentStatus",
           "IncidentUpdate", "LevelRequest", "PlaybookRef"]

IncidentStatus = Literal["open", "contained", "closed"]
INCIDENT_STATUSES: tuple[str, ...] = ("open", "contained", "closed")

Confirmation = Literal["unconfirmed", "confirmed", "false_alarm"]
CONFIRMATIONS: tuple[str, ...] = ("unconfirmed", "confirmed", "false_alarm")


class Evidence(BaseModel):
    """How sure an incident is: the distinct detectors that alarmed (an alarm without a
    device id counts as `alarm:<alarm_id>`), and whether a person reported it."""

    model_config = ConfigDict(extra="forbid")

    devices: list[str] = Field(default_factory=list)
    people: bool = False

    def union(self, other: Evidence) -> Evidence:
        return Evidence(devices=[*self.devices, *(d for d in other.devices
                                                   if d not in self.devices)],
                        people=self.people or other.people)

    def real_devices(self) -> list[str]:
        return [d for d in self.devices if not d.startswith("alarm:")]


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
    sites: list[Identifier] | None = Field(
        default=None, description="the other sites of its building whose alarms joined it "
                                  "(the units a fire spread to), in the order they did")
    kind: str
    hazard: str
    family: str = ""
    confirmation: Confirmation = "confirmed"
    confirmed_at: Timestamp | None = None
    confirmed_by: str | None = None
    evidence: Evidence = Field(default_factory=Evidence)
    playbook: PlaybookRef
    alarm_ids: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)
    opened_at: Timestamp
    closed_at: Timestamp | None = None
    close_reason: str | None = None
    merged: list[str] = Field(default_factory=list)
    merged_into: str | None = None
    last_alarm_at: Timestamp
    drill: bool | None = Field(default=None, description="演练: opened by a drill's alarm; "
                               "its tasks carry the mark, nobody who reported is told, the "
                               "period report keeps it apart")
    reporters: list[Reporter] = Field(default_factory=list,
                                      description="people who reported it, for the feedback")
    revision: int = 1
    last_update_id: str | None = None

    @property
    def confirmed(self) -> bool:
        return self.confirmation == "confirmed"

    def with_alarm(self, alarm_id: str, occurred_at: datetime) -> Incident:
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
    by: str = person_field()
    note: str = Field(default="", max_length=4000)


CloseReason = Literal["handled", "false_alarm", "duplicate"]
CLOSE_REASONS: tuple[str, ...] = ("handled", "false_alarm", "duplicate")
"""Why a person closes an incident: handled (处置完毕), a false alarm (误报), or a duplicate of
another incident (重复, naming it)."""


class CloseRequest(BaseModel):
    """The body of `POST /api/v1/incidents/{incident_id}/close` (结案 / 撤销)."""

    model_config = ConfigDict(extra="forbid")

    reason: CloseReason
    of: Identifier | None = Field(default=None, description="duplicate: the incident it repeats")
    by: str = person_field()
    note: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _duplicate_names_the_other(self) -> CloseRequest:
        if (self.reason == "duplicate") != (self.of is not None):
            raise field_error("of", "value_error", "a duplicate names the incident it repeats "
                              "(of); no other reason does")
        return self


class ContainRequest(BaseModel):
    """The body of `POST /api/v1/incidents/{incident_id}/contain` (控制: under control)."""

    model_config = ConfigDict(extra="forbid")

    by: str = person_field()
    note: str = Field(default="", max_length=4000)


class IncidentUpdate(BaseModel):
    """A change to an incident, carried on `whistle.incident-updates` (key: incident_id):
    `set_level` (a person), `raise_level` (an escalation: to `level` unless it is as severe
    already), `confirm` (the verification's deadline passed: positive alarm sequence) or
    `merge_into` (a late alarm showed it is part of the incident `into`), or a person's `close`
    (with `reason`; a duplicate names the incident `into`) or `contain` (控制: under control,
    not over); the duty officer's `add_task` (加派), `reassign` (转派) and `cancel_task`; and
    `whistle` (吹哨: call `departments` in, to report for duty), by a person or a playbook's
    rule."""

    model_config = ConfigDict(extra="forbid")

    update_id: Identifier
    incident_id: Identifier
    action: Literal["set_level", "raise_level", "confirm", "merge_into", "close", "contain",
                    "add_task", "reassign", "cancel_task", "whistle"]
    level: Level | None = None
    reason: CloseReason | None = None
    into: Identifier | None = None
    task_id: Identifier | None = Field(default=None, description="reassign, cancel_task: "
                                                                 "which task")
    department: DepartmentId | None = Field(default=None, description="add_task, reassign: "
                                                                      "to whom")
    departments: list[DepartmentId] = Field(default_factory=list,
                                            description="whistle: whom it calls in")
    task_action: str | None = Field(default=None, max_length=2000,
                                    description="add_task, reassign: what to do")
    ack_within: Duration | None = None
    complete_within: Duration | None = None
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=4000)
    at: Timestamp
    attempt: int = Field(default=0, ge=0, description="a merge sent again while the incident "
                                                      "it merges has not opened yet")

    @model_validator(mode="after")
    def _action_has_what_it_needs(self) -> IncidentUpdate:
        if self.action in ("set_level", "raise_level") and self.level is None:
            raise field_error("level", "missing", f"{self.action} needs a level")
        if self.action == "merge_into" and self.into is None:
            raise field_error("into", "missing", "merge_into needs the incident to merge into")
        if (self.action == "close") != (self.reason is not None):
            raise field_error("reason", "value_error", "close, and only close, has a reason")
        if self.action in ("reassign", "cancel_task") and self.task_id is None:
            raise field_error("task_id", "missing", f"{self.action} needs the task")
        if self.action in ("add_task", "reassign") and self.department is None:
            raise field_error("department", "missing", f"{self.action} needs a department")
        if self.action == "add_task" and not self.task_action:
            raise field_error("task_action", "missing", "add_task needs the action")
        if self.action == "whistle" and not self.departments:
            raise field_error("departments", "missing", "a whistle calls in a department")
        return self
