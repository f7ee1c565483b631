"""Internal messages between stages, and the dead-letter envelope."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.alarm import Alarm
from schemas.common import Identifier, Timestamp
from schemas.incident import Evidence
from schemas.site import Site

__all__ = ["DeadLetter", "SiteEvent", "Triaged"]


class Triaged(BaseModel):
    """Triage's verdict on one alarm, carried on `whistle.triaged` (key: incident_id).

    `open` a new incident, `join` one (after merging `merges` into it), or `attach` a restore
    signal to it (recorded, changes nothing). `evidence` is everything triage has seen of the
    incident so far, for the confirmation rules. Deterministic: a replay is harmless.

    `silenced`: a maintenance silence held the alarm back; `incident_id` is then the silence's
    id, whose timeline records it (`agents.logic.silences`). `broke_silence` names the silence
    an alarm broke through."""

    model_config = ConfigDict(extra="forbid")

    alarm: Alarm
    incident_id: str
    action: Literal["open", "join", "attach", "silenced"]
    hazard: str
    family: str
    merges: list[str] = Field(default_factory=list)
    evidence: Evidence = Field(default_factory=lambda: Evidence())
    site: Site
    broke_silence: str | None = None

    @property
    def opens(self) -> bool:
        return self.action == "open"


class SiteEvent(BaseModel):
    """What the incident stages tell triage about a site, on `whistle.site-events` (key: the
    site's `triage_key`: its building's, if it shares one): an incident closed, so its family
    starts afresh and false alarms are counted."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    site_id: Identifier
    type: Literal["incident_closed"]
    incident_id: Identifier
    family: str
    reason: str
    devices: list[str] = Field(default_factory=list)
    at: Timestamp


class DeadLetter(BaseModel):
    """What `whistle.alarms.dlq` carries: why a message was refused, and its bytes untouched."""

    model_config = ConfigDict(extra="forbid")

    reason: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key_base64: str | None = None
    value_base64: str
    value_text: str | None = None
    at: Timestamp

    @classmethod
    def of(cls, raw: bytes | None, key: bytes | None, reason: str, source_topic: str,
           partition: int | None, offset: int | None, at: datetime) -> DeadLetter:
        raw = raw or b""
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(
            reason=reason, source_topic=source_topic, partition=partition, offset=offset,
            key_base64=base64.b64encode(key).decode() if key is not None else None,
            value_base64=base64.b64encode(raw).decode(), value_text=text, at=at,
        )

    def raw(self) -> bytes:
        return base64.b64decode(self.value_base64)
