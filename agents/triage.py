"""Triage agent: `whistle.alarms` -> `whistle.triaged`.

Deduplicates by alarm_id and correlates alarms into incidents per site (see `correlation`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from schemas import Alarm, Site, Triaged
from streams import topics
from streams.codec import dump

from .correlation import SiteState, decide, site_key

if TYPE_CHECKING:
    from streams.app import Whistle

__all__ = ["register"]


async def handle(w: "Whistle", alarm: Alarm, message) -> None:
    key = site_key(alarm)
    site = w.sites.get(alarm.site_id or "") or Site.ad_hoc(
        key, alarm.location.address if alarm.location else None)
    state = SiteState.from_json(w.tables.sites.get(key))
    decision = decide(alarm, state, w.tables.alarms_seen.get(alarm.alarm_id),
                      w.settings.correlation_window)
    if not decision.duplicate:
        w.tables.sites[key] = state.to_json()
        w.tables.alarms_seen[alarm.alarm_id] = decision.incident_id
    result = "duplicate" if decision.duplicate else "opened" if decision.opens else "joined"
    w.metrics.alarms.labels(kind=alarm.kind if alarm.known_kind else "unknown",
                            result=result).inc()
    # A duplicate is forwarded too: if an earlier run crashed after recording the alarm but
    # before sending this, the incident stage still gets it; that stage drops what it has.
    await w.send(topics.TRIAGED, decision.incident_id, dump(Triaged(
        alarm=alarm, incident_id=decision.incident_id, opens=decision.opens,
        hazard=decision.hazard, site=site)))


def register(w: "Whistle") -> None:
    def checked_against_broker_time(message) -> dict:
        """An alarm's occurred_at is checked against when the broker took it, not now."""
        if message.timestamp:
            return {"now": datetime.fromtimestamp(message.timestamp, timezone.utc)}
        return {"now": w.clock()}

    w.stage(w.topics.alarms, "triage", Alarm, handle, checked_against_broker_time)
