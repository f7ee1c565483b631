"""Timeline entries (pure): deterministic ids, idempotent appends, time order.

    >>> e = entry("inc-1", "incident_opened", at)
    >>> append([], e) == append(append([], e), e)   # a replayed entry is recorded once
    True
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from schemas import TimelineEntry

__all__ = ["append", "entry", "in_time_order"]


def entry(incident_id: str, type_: str, at: datetime, *, task_id: str | None = None,
          alarm_id: str | None = None, department: str | None = None, by: str | None = None,
          detail: dict[str, Any] | None = None, revision: int | None = None,
          key: str | None = None) -> TimelineEntry:
    """One timeline entry; its id is derived from what happened (not when it was recorded):
    the incident, type, task, alarm, revision, and `key` where those do not tell it apart."""
    ident = f"{incident_id}|{type_}|{task_id or ''}|{alarm_id or ''}|{revision or ''}"
    if key is not None:
        ident += f"|{key}"
    return TimelineEntry(
        entry_id=hashlib.sha256(ident.encode("utf-8")).hexdigest()[:16],
        incident_id=incident_id, at=at, type=type_, task_id=task_id, alarm_id=alarm_id,
        department=department, by=by, detail=detail,
    )


def append(entries: list[dict], new: TimelineEntry) -> list[dict]:
    """`entries` (JSON dicts, as a table holds them) with `new` added unless already there."""
    if any(e["entry_id"] == new.entry_id for e in entries):
        return entries
    return [*entries, new.model_dump(mode="json")]


def in_time_order(entries: list[dict]) -> list[TimelineEntry]:
    """Entries sorted by time; entries of the same instant keep the order they were recorded."""
    parsed = [TimelineEntry.model_validate(e) for e in entries]
    return sorted(parsed, key=lambda e: e.at)
