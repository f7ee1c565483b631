"""Joint campaigns (专项整治 / 联合执法): the campaign playbook file, the records that travel on
`whistle.campaigns` (key: campaign_id), the state kept per campaign and per target site, and
the request bodies and progress of the HTTP API.

A campaign playbook names its target sites (by type, grid or list) and each department's step
with a deadline in days. Starting it gives every target site one task per step; departments
record a finding per site (合格, 责令整改, 罚款, 关停取缔), a later one replacing an earlier one.

    >>> CampaignPlaybook.model_validate({"id": "gas-safety", "version": 1,
    ...     "title": "燃气安全专项整治", "targets": {"types": ["small_venue"]},
    ...     "steps": [{"department": "gas_utility", "action": "入户安检", "within": "14d"}]
    ...     }).steps[0].within.days
    14
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    field_validator,
    model_validator,
)

from schemas.common import DepartmentId, Duration, Identifier, Timestamp, field_error, person_field
from schemas.incident import PlaybookRef
from schemas.playbook import Slug, Version
from schemas.site import SiteType

__all__ = ["CAMPAIGN_OUTCOMES", "CAMPAIGN_STATUSES", "Campaign", "CampaignCommand",
           "CampaignEnd", "CampaignFinding", "CampaignMessage", "CampaignOutcome",
           "CampaignPlaybook", "CampaignProgress", "CampaignSite", "CampaignStart",
           "CampaignStatus", "CampaignStep", "CampaignSummary", "CampaignTargets",
           "CampaignTask", "CampaignTotals", "DepartmentProgress", "EndCampaignRequest",
           "FindingRequest",
           "GridProgress", "StartCampaignRequest", "site_key"]

CampaignOutcome = Literal["compliant", "rectification_ordered", "fined", "closed"]
CAMPAIGN_OUTCOMES: tuple[CampaignOutcome, ...] = (
    "compliant", "rectification_ordered", "fined", "closed")
"""What a department found at a site: 合格, 责令整改, 罚款, 关停取缔 (the words are the
report's, `agents.report.campaign_report.OUTCOME_LABELS`)."""

CampaignStatus = Literal["running", "ended"]
CAMPAIGN_STATUSES: tuple[CampaignStatus, ...] = ("running", "ended")

GridName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Person = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(max_length=4000)]


# --- the playbook file -------------------------------------------------------------------

class CampaignTargets(BaseModel):
    """Which registered sites a campaign covers: every site listed in `sites`, and, when
    `types` or `grids` are given, every site of one of the types in one of the grids (an empty
    list there means any)."""

    model_config = ConfigDict(extra="forbid")

    types: list[SiteType] = Field(default_factory=list)
    grids: list[GridName] = Field(default_factory=list)
    sites: list[Identifier] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_sites(self) -> CampaignTargets:
        if not (self.types or self.grids or self.sites):
            raise ValueError("a campaign must name its sites: by types, grids or sites")
        return self


class CampaignStep(BaseModel):
    """One department's part: what it does at every target site, and within how many days of
    the start."""

    model_config = ConfigDict(extra="forbid")

    department: DepartmentId
    action: str = Field(min_length=1, max_length=500)
    within: Duration
    name: str | None = Field(default=None, min_length=1, max_length=64,
                             description="a short name for tables, e.g. 联合检查")

    @field_validator("within")
    @classmethod
    def _in_days(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1) or value % timedelta(days=1):
            raise ValueError('deadlines of a campaign are in days: write e.g. "7d", "14d", "30d"')
        return value


class CampaignPlaybook(BaseModel):
    """A campaign playbook (专项整治方案), one YAML file of `playbooks/campaigns/`."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    version: Version
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    targets: CampaignTargets
    steps: list[CampaignStep] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _distinct_steps(self) -> CampaignPlaybook:
        seen: set[tuple[str, str]] = set()
        for i, step in enumerate(self.steps):
            if (step.department, step.action) in seen:
                raise field_error(("steps", i, "action"), "value_error",
                                  f"{step.department} has this action twice: give each step of "
                                  f"a department its own action")
            seen.add((step.department, step.action))
        return self


# --- the records on whistle.campaigns (key: campaign_id) ----------------------------------

class CampaignStart(BaseModel):
    """Start campaign `campaign_id` from the campaign playbook `playbook`, on the sites of the
    registry at hand when it is processed."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"] = "start"
    update_id: Identifier
    campaign_id: Identifier
    playbook: Slug
    by: Person
    at: Timestamp


class CampaignFinding(BaseModel):
    """A department's finding at one site. `task_id` picks the task when the department has
    more than one step at the site; a later finding replaces an earlier one (责令整改, then
    合格 after re-inspection)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["finding"] = "finding"
    update_id: Identifier
    campaign_id: Identifier
    site_id: Identifier
    department: DepartmentId
    task_id: str | None = Field(default=None, max_length=400)
    outcome: CampaignOutcome
    note: Note = ""
    by: Person
    at: Timestamp


class CampaignEnd(BaseModel):
    """End the campaign: its tasks stay as they are, no finding is taken after."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["end"] = "end"
    update_id: Identifier
    campaign_id: Identifier
    by: Person
    at: Timestamp


CampaignCommand = Annotated[CampaignStart | CampaignFinding | CampaignEnd,
                            Field(discriminator="type")]
"""Any record of `whistle.campaigns`, told apart by `type`."""


class CampaignMessage(RootModel[CampaignCommand]):
    """A record of `whistle.campaigns` as one model, for `schemas.codec.decode`:
    `decode(CampaignMessage, raw).root` is a CampaignStart, CampaignFinding or CampaignEnd."""


# --- the state ---------------------------------------------------------------------------

class CampaignTask(BaseModel):
    """One step of the campaign at one site. Its id is `<campaign_id>.<site_id>.<n>`, n the
    step's place in the playbook counting from 1, so the same start gives the same ids."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    department: DepartmentId
    action: str
    due: Timestamp
    outcome: CampaignOutcome | None = None
    by: str | None = None
    at: Timestamp | None = None
    note: str | None = None
    last_update_id: str | None = Field(default=None,
                                       description="the finding recorded last (replays)")


class CampaignSite(BaseModel):
    """A target site of a campaign with its tasks, one per step (one record per site)."""

    model_config = ConfigDict(extra="forbid")

    campaign_id: Identifier
    site_id: Identifier
    site_name: str
    grid: str = ""
    tasks: list[CampaignTask]


def site_key(campaign_id: str, site_id: str) -> str:
    """The key of a campaign's site record (the worker's `campaign_sites` table, in the
    partition of the campaign id): `site_key("cmp-gas", "jb-1") == "cmp-gas/jb-1"`."""
    return f"{campaign_id}/{site_id}"


class Campaign(BaseModel):
    """A campaign as started: the playbook's version, and the target sites and steps frozen at
    the start (the playbook or the registry may change afterwards). `unregistered`: sites the
    playbook lists by id that the registry did not know then."""

    model_config = ConfigDict(extra="forbid")

    campaign_id: Identifier
    playbook: PlaybookRef
    title: str
    status: CampaignStatus = "running"
    started_at: Timestamp
    started_by: str
    ended_at: Timestamp | None = None
    ended_by: str | None = None
    sites: list[str]
    steps: list[CampaignStep]
    unregistered: list[str] = Field(default_factory=list)


# --- the HTTP API ------------------------------------------------------------------------

class StartCampaignRequest(BaseModel):
    """The body of `POST /api/v1/campaigns`: start a campaign playbook; `campaign_id`
    defaults to `cmp-<playbook>-<local date>`."""

    model_config = ConfigDict(extra="forbid")

    playbook: Slug
    campaign_id: Identifier | None = None
    by: str = person_field()


class FindingRequest(BaseModel):
    """The body of `POST /api/v1/campaigns/{campaign_id}/findings`: what a department found
    at a site."""

    model_config = ConfigDict(extra="forbid")

    site_id: Identifier
    department: DepartmentId
    task_id: str | None = Field(default=None, max_length=400,
                                description="needed when the department has several steps")
    outcome: CampaignOutcome
    note: Note = ""
    by: str = person_field()


class EndCampaignRequest(BaseModel):
    """The body of `POST /api/v1/campaigns/{campaign_id}/end`."""

    model_config = ConfigDict(extra="forbid")

    by: str = person_field()


class DepartmentProgress(BaseModel):
    """A department's tasks in a campaign: how many, done (with a finding), overdue (no
    finding, past due) and the findings by outcome."""

    model_config = ConfigDict(extra="forbid")

    department: str
    tasks: int
    done: int
    overdue: int
    outcomes: dict[CampaignOutcome, int]


class GridProgress(BaseModel):
    """A grid's sites in a campaign; a site is done when every task of it has a finding."""

    model_config = ConfigDict(extra="forbid")

    grid: str
    sites: int
    sites_done: int
    tasks: int
    done: int
    overdue: int


class CampaignTotals(BaseModel):
    """A campaign's totals at `at`: sites (all done when every task has a finding), tasks,
    done, overdue (no finding past its due), and the findings by outcome."""

    model_config = ConfigDict(extra="forbid")

    at: Timestamp
    sites: int
    sites_done: int
    tasks: int
    done: int
    overdue: int
    outcomes: dict[CampaignOutcome, int]


class CampaignProgress(CampaignTotals):
    """How far a campaign is, at `at`: the totals, per department and per grid."""

    campaign_id: str
    status: CampaignStatus
    departments: list[DepartmentProgress]
    grids: list[GridProgress]


class CampaignSummary(CampaignTotals):
    """A campaign as `GET /api/v1/campaigns` lists it: what it is, who started it, and its
    totals (its CampaignProgress without the departments and grids)."""

    campaign_id: str
    title: str
    playbook: PlaybookRef
    status: CampaignStatus
    started_at: Timestamp
    started_by: str
    ended_at: Timestamp | None = None
    ended_by: str | None = None
