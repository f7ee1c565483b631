"""Timeline agent: `whistle.timeline` -> the incident's entries, kept once each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import TimelineEntry

from .timelines import append

if TYPE_CHECKING:
    from streams.app import Whistle

__all__ = ["register"]


async def handle(w: "Whistle", new: TimelineEntry, message) -> None:
    entries = w.tables.timelines.get(new.incident_id) or []
    updated = append(entries, new)
    if updated is not entries:
        w.tables.timelines[new.incident_id] = updated


def register(w: "Whistle") -> None:
    w.stage(w.topics.timeline, "timeline", TimelineEntry, handle)
