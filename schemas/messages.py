"""Internal messages between stages, and the dead-letter envelope."""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from .alarm import Alarm
from .common import Timestamp
from .site import Site

__all__ = ["DeadLetter", "Triaged"]


class Triaged(BaseModel):
    """Triage's verdict on one alarm, carried on `whistle.triaged` (key: incident_id).

    Deterministic: the same alarm always yields the same incident_id, so a replay is harmless."""

    model_config = ConfigDict(extra="forbid")

    alarm: Alarm
    incident_id: str
    opens: bool
    hazard: str
    site: Site


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
           partition: int | None, offset: int | None, at: datetime) -> "DeadLetter":
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
