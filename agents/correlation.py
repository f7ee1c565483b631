"""Triage decisions (pure): is this alarm new, and which incident does it belong to?

Alarms at the same site and of the same hazard family join one incident while it is open: within
the correlation window after that incident's last alarm (by `occurred_at`). Ids are derived from
the alarm that opened the incident, so a replay decides exactly the same.

    >>> d = decide(alarm, SiteState(), seen=None, window=timedelta(minutes=10))
    >>> d.opens, d.incident_id
    (True, 'inc-20230516-...')
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from schemas import Alarm

__all__ = ["HAZARDS", "Decision", "OpenIncident", "SiteState", "decide", "hazard_of",
           "incident_id_for", "site_key"]

HAZARDS: dict[str, str] = {
    "smoke": "fire", "heat": "fire", "flame": "fire", "manual_call_point": "fire",
    "fire_report": "fire", "electrical": "electrical", "gas": "gas", "power_trip": "power",
    "hazmat": "hazmat", "water_leak": "water", "structural": "structural", "other": "other",
}
"""Hazard family of each known kind: a smoke detector and a 119 call about one fire are one
incident. Unknown kinds form the family `other`."""

_CHINA = timezone(timedelta(hours=8))


def hazard_of(kind: str) -> str:
    return HAZARDS.get(kind, "other")


def site_key(alarm: Alarm) -> str:
    """The key an alarm travels under on `whistle.alarms`: its site, else where it was seen."""
    if alarm.site_id:
        return alarm.site_id
    loc = alarm.location
    assert loc is not None  # the Alarm model requires site_id or location
    where = loc.address or f"{loc.lat:.5f},{loc.lon:.5f}"
    return "adhoc-" + hashlib.sha256(where.encode("utf-8")).hexdigest()[:12]


def incident_id_for(site: str, hazard: str, alarm: Alarm) -> str:
    """Derived from the opening alarm: `inc-<local date>-<hash>`."""
    digest = hashlib.sha256(f"{site}|{hazard}|{alarm.alarm_id}".encode("utf-8")).hexdigest()[:10]
    return f"inc-{alarm.occurred_at.astimezone(_CHINA):%Y%m%d}-{digest}"


@dataclass
class OpenIncident:
    incident_id: str
    last_alarm_at: datetime


@dataclass
class SiteState:
    """What triage remembers per site: the open incident of each hazard family."""

    open: dict[str, OpenIncident] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {h: {"incident_id": o.incident_id, "last_alarm_at": o.last_alarm_at.isoformat()}
                for h, o in self.open.items()}

    @classmethod
    def from_json(cls, data: dict | None) -> "SiteState":
        return cls({h: OpenIncident(o["incident_id"], datetime.fromisoformat(o["last_alarm_at"]))
                    for h, o in (data or {}).items()})


@dataclass(frozen=True)
class Decision:
    incident_id: str
    hazard: str
    opens: bool
    duplicate: bool


def decide(alarm: Alarm, state: SiteState, seen: str | None, window: timedelta) -> Decision:
    """Decide for one alarm and update `state` in place (unless it is a duplicate).

    `seen` is the incident an alarm with this id was already attached to, if any."""
    hazard = hazard_of(alarm.kind)
    if seen is not None:
        return Decision(seen, hazard, opens=False, duplicate=True)
    current = state.open.get(hazard)
    if current is not None and alarm.occurred_at - current.last_alarm_at <= window:
        current.last_alarm_at = max(current.last_alarm_at, alarm.occurred_at)
        return Decision(current.incident_id, hazard, opens=False, duplicate=False)
    incident_id = incident_id_for(site_key(alarm), hazard, alarm)
    state.open[hazard] = OpenIncident(incident_id, alarm.occurred_at)
    return Decision(incident_id, hazard, opens=True, duplicate=False)
