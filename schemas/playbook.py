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
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from .alarm import Signal
from .common import DepartmentId, Duration, Level, field_error
from .site import SiteType

__all__ = ["Playbook", "PlaybookMatch", "PlaybookStep", "Slug"]

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


def _version_text(value: object) -> object:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class PlaybookMatch(BaseModel):
    """What a playbook answers. An empty list means any; each list given narrows the match."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list)
    signals: list[Signal] = Field(default_factory=list)
    site_types: list[SiteType] = Field(default_factory=list)


class PlaybookStep(BaseModel):
    """One department's part of the plan."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    department: DepartmentId
    action: str = Field(min_length=1, max_length=2000)
    action_en: str = Field(default="", max_length=2000)
    ack_within: Duration
    complete_within: Duration

    @model_validator(mode="after")
    def _complete_after_ack(self) -> "PlaybookStep":
        if self.complete_within < self.ack_within:
            raise field_error("complete_within", "value_error",
                              "must not be shorter than ack_within")
        return self


class Playbook(BaseModel):
    """A contingency plan. Exactly one playbook in a set is the `fallback`, which matches
    everything no other playbook takes, so no alarm is ever dropped."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    version: Annotated[str, BeforeValidator(_version_text),
                       StringConstraints(min_length=1, max_length=32)]
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    level: Level
    priority: int = 0
    fallback: bool = False
    match: PlaybookMatch = Field(default_factory=PlaybookMatch)
    steps: list[PlaybookStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> "Playbook":
        ids = [s.id for s in self.steps]
        for i, step_id in enumerate(ids):
            if step_id in ids[:i]:
                raise field_error("steps", "value_error", f"step id {step_id!r} appears twice")
        if self.fallback and self.match != PlaybookMatch():
            raise field_error("match", "value_error",
                              "the fallback playbook takes everything: leave match empty")
        return self
