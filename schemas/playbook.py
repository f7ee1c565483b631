"""The playbook file (应急预案): which alarms it answers and which department does what by when.

    id: laboratory-fire
    version: 1
    title: 实验室火灾应急预案
    level: II
    match: {kinds: [smoke, fire_report], site_types: [laboratory]}
    steps:
      - id: lead
        department: safety_office
        action: 启动应急预案, 统一指挥
        ack_within: 1m
        complete_within: 2h

The reference with one worked example per feature is docs/playbooks.md; the JSON Schema editors
use is schemas/playbook.schema.json (`whistle playbooks schema` writes it).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from schemas.alarm import Signal
from schemas.common import DepartmentId, Duration, Identifier, Level, field_error
from schemas.site import SiteType

__all__ = ["AttributeCondition", "Confirm", "EscalationRule", "HourWindow", "Playbook",
           "PlaybookMatch", "PlaybookStep", "Slug", "StepUnits", "StepWhen", "Version", "WEEKDAYS",
           "Weekday", "WhistleRule", "WhistleWhen"]

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _version_text(value: object) -> object:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Version = Annotated[str, BeforeValidator(_version_text),
                    StringConstraints(min_length=1, max_length=32),
                    WithJsonSchema({"type": ["string", "integer", "number"]})]
"""A playbook's version as its file writes it: `3`, `3.1` or `"2026-12"`, kept as text."""


def _parse_window(value: Any) -> Any:
    if not isinstance(value, str) or not _WINDOW.match(value):
        raise ValueError('an hour window is "HH:MM-HH:MM", e.g. "22:00-06:00"')
    return value


HourWindow = Annotated[str, BeforeValidator(_parse_window)]
"""Local time of day, start inclusive, end exclusive; a window may wrap past midnight."""


def window_minutes(window: str) -> tuple[int, int]:
    """ "22:00-06:00" -> (1320, 360)."""
    m = _WINDOW.match(window)
    assert m, window
    return int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])


def _shorthand(value: Any) -> Any:
    """A bare value means equality: `floor: 12` is `floor: {eq: 12}`."""
    if isinstance(value, dict) and value and set(value) <= {"eq", "in", "not_in", "gte", "lte",
                                                           "gt", "lt", "exists"}:
        return value
    return {"eq": value}


class AttributeCondition(BaseModel):
    """A test on one of the alarm's free `attributes`. All given operators must hold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    eq: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None
    exists: bool | None = None


Condition = Annotated[AttributeCondition, BeforeValidator(_shorthand), WithJsonSchema({
    "description": "a value (the attribute must equal it) or an object of operators: eq, in, "
                   "not_in, gte, lte, gt, lt, exists",
    "anyOf": [{"type": ["string", "number", "boolean", "null"]},
              {"type": "object", "additionalProperties": False, "minProperties": 1,
               "properties": {op: {} for op in ("eq", "in", "not_in", "gte", "lte", "gt", "lt",
                                                "exists")}}]})]


class PlaybookMatch(BaseModel):
    """What a playbook answers. An empty list means any; each thing given narrows the match.

    Specificity (the most specific playbook wins) is the sum of the weights of what is given:
    sites 4, grids 2, every other list 1, hours or weekdays 1, each attribute 1."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list)
    signals: list[Signal] = Field(default_factory=list)
    site_types: list[SiteType] = Field(default_factory=list)
    sites: list[Identifier] = Field(default_factory=list)
    grids: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list)
    levels: list[Level] = Field(default_factory=list,
                                description="the level an alarm states in attributes.level")
    hours: list[HourWindow] = Field(default_factory=list)
    weekdays: list[Weekday] = Field(default_factory=list)
    timezone: str = "Asia/Shanghai"
    attributes: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)],
                     Condition] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, a long name
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like "
                             f"Asia/Shanghai)") from None
        return value

    def is_empty(self) -> bool:
        return self.model_dump(exclude={"timezone"}) == PlaybookMatch().model_dump(
            exclude={"timezone"})


class StepWhen(BaseModel):
    """A step is planned only while its conditions hold (it is added when they come to)."""

    model_config = ConfigDict(extra="forbid")

    confirmed: bool | None = Field(
        default=None, description="true: only once the incident is confirmed (the default in a "
                                  "playbook with confirm); false: also while it is unconfirmed")
    level_at_least: Level | None = Field(default=None,
                                         description="III: at level III, II or I (I is worst)")


class StepUnits(BaseModel):
    """Which unit of the department covers a site or a grid (the site registry's own
    `overrides` come between the two)."""

    model_config = ConfigDict(extra="forbid")

    by_site: dict[Identifier, str] = Field(default_factory=dict)
    by_grid: dict[str, str] = Field(default_factory=dict)


class EscalationRule(BaseModel):
    """What happens when a task is overdue: notify other departments, raise the incident's
    level (which adds the steps of the higher level), again every `repeat` up to `times`."""

    model_config = ConfigDict(extra="forbid")

    on_overdue: Literal["ack", "complete"] = Field(
        description="which deadline: the acknowledgement's or the completion's")
    notify: list[DepartmentId] = Field(default_factory=list)
    raise_level: bool = False
    repeat: Duration | None = None
    times: int = Field(default=1, ge=1, le=100)

    @model_validator(mode="after")
    def _does_something(self) -> EscalationRule:
        if not self.notify and not self.raise_level:
            raise field_error("notify", "value_error",
                              "an escalation notifies a department or raises the level")
        if self.times > 1 and self.repeat is None:
            raise field_error("repeat", "missing", "needed when times is more than 1")
        return self


class PlaybookStep(BaseModel):
    """One department's part of the plan."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    department: DepartmentId
    action: str = Field(min_length=1, max_length=2000)
    action_en: str = Field(default="", max_length=2000)
    ack_within: Duration
    complete_within: Duration
    after: list[Slug] = Field(default_factory=list,
                              description="dispatched once these steps are completed")
    when: StepWhen = Field(default_factory=StepWhen)
    units: StepUnits = Field(default_factory=StepUnits)
    escalate: list[EscalationRule] | None = Field(
        default=None, description="overrides the playbook's escalate for this step")

    @model_validator(mode="after")
    def _complete_after_ack(self) -> PlaybookStep:
        if self.complete_within < self.ack_within:
            raise field_error("complete_within", "value_error",
                              "must not be shorter than ack_within")
        return self


class Confirm(BaseModel):
    """Hold the playbook back until the incident is confirmed, as GB 50116-2013 4.1.6 and
    NFPA 72's positive alarm sequence require. A single automatic detector opens the incident
    `unconfirmed` and only `verify` is dispatched (with the steps that say `when: {confirmed:
    false}`). It becomes confirmed, and the rest is dispatched, when `detectors` independent
    detectors alarm, a person reports (manual call point, fire report: never held back), the
    verification finds a fire, or the verification is not acknowledged or not completed in
    time. A verification that finds a false alarm closes the incident."""

    model_config = ConfigDict(extra="forbid")

    verify: PlaybookStep = Field(description="the on-site check: ack within 15s-1m, verify "
                                             "within 3m")
    detectors: int = Field(default=2, ge=2, le=5,
                           description="independent detectors that confirm without a check")

    @model_validator(mode="after")
    def _as_the_codes_say(self) -> Confirm:
        v = self.verify
        if not timedelta(seconds=15) <= v.ack_within <= timedelta(minutes=1):
            raise field_error(("verify", "ack_within"), "value_error",
                              "a verification is acknowledged within 15s to 1m (NFPA 72 PAS: "
                              "15 s; GB 50116-2013 4.1.6)")
        if v.complete_within > timedelta(minutes=3):
            raise field_error(("verify", "complete_within"), "value_error",
                              "a verification is done within 3m (NFPA 72 PAS: 180 s)")
        if v.after or v.when != StepWhen():
            raise field_error(("verify", "after" if v.after else "when"), "value_error",
                              "the verification goes out at once: no after or when")
        return self


class WhistleWhen(BaseModel):
    """When a playbook blows the whistle itself: the incident (confirmed) reaches a level, or
    its tasks have missed `overdue` deadlines in all (each task's acknowledgement and completion
    count once each; notices and summons do not count)."""

    model_config = ConfigDict(extra="forbid")

    level_at_least: Level | None = None
    overdue: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _one_condition(self) -> WhistleWhen:
        if (self.level_at_least is None) == (self.overdue is None):
            raise field_error("level_at_least", "value_error",
                              "give exactly one of level_at_least and overdue")
        return self


class WhistleRule(BaseModel):
    """吹哨: call departments in (usually the district's) when `when` holds; each must report
    for duty (报到) within `within`, else within its own `report_within` (departments.yaml).
    A department already called in, and not yet done, is not called again."""

    model_config = ConfigDict(extra="forbid")

    when: WhistleWhen
    departments: list[DepartmentId] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=2000)
    within: Duration | None = None


class Playbook(BaseModel):
    """A contingency plan. Exactly one playbook in a set is the `fallback`, which matches
    everything no other playbook takes, so no alarm is ever dropped."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    version: Version
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    level: Level
    priority: int = Field(default=0, ge=-1000, le=1000)
    fallback: bool = False
    match: PlaybookMatch = Field(default_factory=PlaybookMatch)
    steps: list[PlaybookStep] = Field(min_length=1)
    escalate: list[EscalationRule] = Field(
        default_factory=list, description="for every step that has no escalate of its own")
    confirm: Confirm | None = Field(
        default=None, description="hold the steps until the incident is confirmed")
    whistle: list[WhistleRule] = Field(default_factory=list,
                                       description="when to call departments in (吹哨)")

    @model_validator(mode="after")
    def _consistent(self) -> Playbook:
        ids = [s.id for s in self.steps]
        for i, step in enumerate(self.steps):
            if step.id in ids[:i]:
                raise field_error(("steps", i, "id"), "value_error",
                                  f"step id {step.id!r} appears twice")
            for dep in step.after:
                if dep not in ids:
                    raise field_error(("steps", i, "after"), "value_error",
                                      f"step {step.id!r} waits for {dep!r}, which is no step")
        if self.confirm is not None and self.confirm.verify.id in ids:
            raise field_error(("confirm", "verify", "id"), "value_error",
                              f"step id {self.confirm.verify.id!r} is used by a step too")
        cycle = _cycle({s.id: s.after for s in self.steps})
        if cycle:
            raise field_error(("steps", ids.index(cycle[0]), "after"), "value_error",
                              f"steps wait for each other in a circle: {' -> '.join(cycle)}")
        if self.fallback and not self.match.is_empty():
            raise field_error("match", "value_error",
                              "the fallback playbook takes everything: leave match empty")
        return self

    def step(self, step_id: str) -> PlaybookStep:
        if self.confirm is not None and self.confirm.verify.id == step_id:
            return self.confirm.verify
        return next(s for s in self.steps if s.id == step_id)


def _cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle in `after`, as a path, or []."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return []

    for node in graph:
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return []
