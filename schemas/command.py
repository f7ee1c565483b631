"""What the duty officer (值班员) asks of the command center, as request bodies: open an
incident from a call (社区派单), add a task (加派), re-assign (转派) or cancel a task, and blow
the whistle (吹哨) to call departments in. Each `by` is needed only when the token names no
person; a token's person is what is recorded.

    >>> WhistleRequest.model_validate({"departments": ["district_emergency"],
    ...                                "reason": "实验室火灾升至I级"}).departments
    ['district_emergency']
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from schemas.alarm import Reporter
from schemas.common import DepartmentId, Duration, Identifier, Level, Timestamp, person_field

__all__ = ["AddTaskRequest", "CancelTaskRequest", "OpenIncidentRequest", "ReassignRequest",
           "WhistleRequest"]


class OpenIncidentRequest(BaseModel):
    """The body of `POST /api/v1/incidents`: a report by phone, a grid worker or the community,
    opened as an incident (or joined to the site's open one, as any alarm is)."""

    model_config = ConfigDict(extra="forbid")

    site_id: Identifier = Field(description="a registered site (find it with GET "
                                            "/api/v1/sites?q=)")
    kind: str = Field(default="fire_report", min_length=1, max_length=64)
    description: str = Field(default="", max_length=4000)
    level: Level | None = Field(default=None, description="the incident's level; default: the "
                                                          "playbook's")
    playbook: str | None = Field(default=None, max_length=64,
                                 description="a playbook id; default: matched as any alarm is")
    reporter: Reporter | None = None
    occurred_at: Timestamp | None = Field(default=None, description="default: now")
    by: str = person_field()


class DrillRequest(BaseModel):
    """The body of `POST /api/v1/drills` (演练): run a playbook as an exercise on a site. The
    real pipeline runs, every task is marked as a drill, and nobody who reported is told."""

    model_config = ConfigDict(extra="forbid")

    site_id: Identifier = Field(description="a registered site (find it with GET "
                                            "/api/v1/sites?q=)")
    playbook: str | None = Field(default=None, max_length=64,
                                 description="the plan to practise; default: matched as an "
                                             "alarm of `kind` at the site would be")
    kind: str = Field(default="fire_report", min_length=1, max_length=64)
    level: Level | None = Field(default=None, description="default: the playbook's")
    description: str = Field(default="", max_length=4000,
                             description="the scenario (演练脚本), as the tasks will read it")
    by: str = person_field()


class AddTaskRequest(BaseModel):
    """The body of `POST /api/v1/incidents/{incident_id}/tasks` (加派)."""

    model_config = ConfigDict(extra="forbid")

    department: DepartmentId
    action: str = Field(min_length=1, max_length=2000)
    ack_within: Duration = timedelta(minutes=10)
    complete_within: Duration = timedelta(hours=2)
    note: str = Field(default="", max_length=4000)
    by: str = person_field()


class ReassignRequest(BaseModel):
    """The body of `POST /api/v1/tasks/{task_id}/reassign` (转派): a new task for `department`
    that takes the step over; the action and deadlines are the old task's unless given."""

    model_config = ConfigDict(extra="forbid")

    department: DepartmentId
    action: str | None = Field(default=None, min_length=1, max_length=2000)
    ack_within: Duration | None = None
    complete_within: Duration | None = None
    note: str = Field(default="", max_length=4000)
    by: str = person_field()


class CancelTaskRequest(BaseModel):
    """The body of `POST /api/v1/tasks/{task_id}/cancel`: the step is not needed (the steps
    after it go on)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=4000, description="why it is not needed")
    by: str = person_field()


class WhistleRequest(BaseModel):
    """The body of `POST /api/v1/incidents/{incident_id}/whistle` (吹哨): call departments in;
    each must report for duty (报到: acknowledge, as a named person) within its
    `report_within`, or `within` when given."""

    model_config = ConfigDict(extra="forbid")

    departments: list[DepartmentId] = Field(min_length=1, max_length=50)
    reason: str = Field(min_length=1, max_length=2000)
    within: Duration | None = None
    by: str = person_field()
