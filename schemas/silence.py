"""Maintenance silences (检修屏蔽): while a site, a device, a grid or every site of a type is
being worked on, its trouble and supervisory signals and single detectors' alarms are recorded
but dispatch nothing. A person's report, a manual call point and a confirmed fire (two
detectors) always break through (see `agents.logic.silences`).

Like Alertmanager's silences: matchers (all given must match), a start and an end, who set it
and why; expiring one early sets its end to now.

    >>> SilenceRequest.model_validate({"matchers": {"site_id": "lab-3"}, "reason": "烟感检修",
    ...     "ends_at": "2026-12-06T12:00:00+08:00"}).matchers.site_id
    'lab-3'
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.common import Identifier, Timestamp, field_error, person_field
from schemas.site import SiteType
from schemas.timeline import TimelineEntry

__all__ = ["SILENCE_STATES", "ExpireRequest", "Matchers", "Silence", "SilenceAnswer",
           "SilenceRequest", "SilenceState"]

SilenceState = Literal["pending", "active", "expired"]
SILENCE_STATES: tuple[SilenceState, ...] = ("pending", "active", "expired")


class Matchers(BaseModel):
    """What a silence covers: every matcher given must match (at least one is given)."""

    model_config = ConfigDict(extra="forbid")

    site_id: Identifier | None = None
    device_id: Identifier | None = None
    grid: str | None = Field(default=None, min_length=1, max_length=100)
    site_type: SiteType | None = None

    @model_validator(mode="after")
    def _something(self) -> Matchers:
        if not self.model_dump(exclude_none=True):
            raise ValueError("give at least one of site_id, device_id, grid, site_type: a "
                             "silence of everything would hide every trouble signal")
        return self


class SilenceRequest(BaseModel):
    """The body of `POST /api/v1/silences`. `starts_at` defaults to now; `by` is needed only
    when the token names no person."""

    model_config = ConfigDict(extra="forbid")

    matchers: Matchers
    starts_at: Timestamp | None = Field(default=None, description="default: now")
    ends_at: Timestamp
    reason: str = Field(min_length=1, max_length=2000, description="why (检修内容)")
    by: str = person_field()

    @model_validator(mode="after")
    def _ends_after_start(self) -> SilenceRequest:
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise field_error("ends_at", "value_error", "must lie after starts_at")
        return self


class Silence(BaseModel):
    """A silence as stored on `whistle.silences` (key: silence_id) and answered by the API.
    An expired one keeps its record: `ends_at` is then when it ended."""

    model_config = ConfigDict(extra="forbid")

    silence_id: Identifier
    matchers: Matchers
    starts_at: Timestamp
    ends_at: Timestamp
    reason: str
    created_by: str
    created_at: Timestamp
    expired_by: str | None = None
    expired_at: Timestamp | None = None

    def state_at(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"


class SilenceAnswer(Silence):
    """A silence as the API answers it: with its state now and, for one silence asked by id,
    the alarms it held back (its timeline's `alarm_silenced` entries)."""

    state: SilenceState
    muted: list[TimelineEntry] | None = None


class ExpireRequest(BaseModel):
    """The body of `POST /api/v1/silences/{silence_id}/expire`: it ends now."""

    model_config = ConfigDict(extra="forbid")

    by: str = person_field()
