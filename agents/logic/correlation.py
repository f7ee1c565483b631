"""Triage decisions (pure): is this alarm new, and which incident does it belong to?

Alarms at one site correlate by *family*: the hazard of their kind for `alarm` signals (a smoke
detector and a 119 call about one fire are one incident), one family per device for `trouble`
and `supervisory` signals (a maintenance incident per device, until it is fixed).

Fire-code rules (GB 50116-2013 4.1.6, NFPA 72 positive alarm sequence) need to know how sure an
incident is, so every cluster keeps its *evidence*: the distinct detectors that alarmed and
whether a person reported (manual call point, fire report). The incident stage decides with it.

Correlation by time is single-linkage over `occurred_at`: an alarm joins an incident of its
family when it lies within the window of any alarm already in it, before or after. When a late
alarm bridges two incidents, the younger is merged into the older. So alarms arriving in any
order end up grouped exactly as they would in time order (tested with every permutation);
only the incident's *id* depends on order, because it comes from the alarm that arrived first,
and dispatch cannot wait. Alarms more than `RETENTION` late open an incident of their own.

`restore` and `test` never open anything: a restore is attached to the device's open
maintenance incident, or to an incident of its hazard whose window it falls in, else only
recorded on the device; a test is a heartbeat (see `health`).

    >>> d = decide(alarm, SiteState(), seen=None, window=timedelta(minutes=10))
    >>> d.action, d.incident_id
    ('open', 'inc-20230516-...')
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal

from schemas import Alarm, Evidence

__all__ = ["HAZARDS", "MAX_EVIDENCE_DEVICES", "PEOPLE_KINDS", "RETENTION", "Cluster", "Decision",
           "SiteState", "decide", "family_of", "hazard_of", "incident_id_for", "is_maintenance"]

HAZARDS: dict[str, str] = {
    "smoke": "fire", "heat": "fire", "flame": "fire", "manual_call_point": "fire",
    "fire_report": "fire", "electrical": "electrical", "gas": "gas", "power_trip": "power",
    "hazmat": "hazmat", "water_leak": "water", "structural": "structural", "other": "other",
    "repeated_false_alarms": "false_alarms",
}
"""Hazard family of each known kind. Unknown kinds form the family `other`."""

PEOPLE_KINDS = frozenset({"manual_call_point", "fire_report"})
"""Kinds a person raises: never held back for confirmation."""

MAX_EVIDENCE_DEVICES = 8
"""Detectors remembered per incident: enough to count independent ones, bounded for storms."""

RETENTION = timedelta(hours=24)
"""How late an alarm may arrive and still join (or bridge) the incidents it belongs to."""

_CHINA = timezone(timedelta(hours=8))

Action = Literal["duplicate", "open", "join", "attach", "record"]


def hazard_of(kind: str) -> str:
    return HAZARDS.get(kind, "other")


def family_of(alarm: Alarm) -> str:
    """What an alarm correlates by (see the module docstring)."""
    if alarm.signal in ("trouble", "supervisory"):
        return f"maintenance:{alarm.device_id or alarm.kind}"
    if alarm.drill:  # an exercise never joins a real incident, nor a real alarm a drill
        return f"drill:{hazard_of(alarm.kind)}"
    return hazard_of(alarm.kind)


def is_maintenance(family: str) -> bool:
    return family.startswith("maintenance:")


def incident_id_for(site: str, family: str, alarm: Alarm,
                    lands: Callable[[str], bool] | None = None) -> str:
    """Derived from the opening alarm: `inc-<local date>-<hash>`.

    With `lands`, the first id of a fixed sequence (the hash of the same text, then of it
    with `|1`, `|2`, ...) that `lands` accepts: the stage chooses ids on the partition it
    works on, so the incident's own stage can run in the same step (`Whistle.pass_on`).
    After `SEARCH` refusals it is the first of the sequence, which is always valid."""
    day = f"inc-{alarm.occurred_at.astimezone(_CHINA):%Y%m%d}-"
    text = f"{site}|{family}|{alarm.alarm_id}"
    first = day + hashlib.sha256(text.encode()).hexdigest()[:10]
    if lands is None or lands(first):
        return first
    for salt in range(1, SEARCH):
        candidate = day + hashlib.sha256(f"{text}|{salt}".encode()).hexdigest()[:10]
        if lands(candidate):
            return candidate
    return first


SEARCH = 1024
"""Ids `incident_id_for` tries before it gives up landing one: with 64 partitions, a miss
(the first id, on another partition: the incident's stage then runs there, a step later)
about once in ten million incidents; with 4, never in practice."""


@dataclass
class Cluster:
    """An open incident as triage sees it: its family, time span and evidence."""

    incident_id: str
    family: str
    first_at: datetime
    last_at: datetime
    devices: list[str] = field(default_factory=list)
    people: bool = False
    muted: str | None = None  # the silence that held it back: no incident holds it (yet)

    def covers(self, at: datetime, window: timedelta) -> bool:
        return is_maintenance(self.family) or self.first_at - window <= at <= self.last_at + window

    def add(self, alarm: Alarm) -> None:
        self.first_at = min(self.first_at, alarm.occurred_at)
        self.last_at = max(self.last_at, alarm.occurred_at)
        if alarm.kind in PEOPLE_KINDS:
            self.people = True
        else:
            # an alarm without a device id counts as a detector of its own: a fire is never
            # held back because a gateway left the field out
            detector = alarm.device_id or f"alarm:{alarm.alarm_id}"
            if detector not in self.devices and len(self.devices) < MAX_EVIDENCE_DEVICES:
                self.devices.append(detector)

    def absorb(self, other: Cluster) -> None:
        self.first_at = min(self.first_at, other.first_at)
        self.last_at = max(self.last_at, other.last_at)
        self.people = self.people or other.people
        for d in other.devices:
            if d not in self.devices and len(self.devices) < MAX_EVIDENCE_DEVICES:
                self.devices.append(d)

    def evidence(self) -> Evidence:
        return Evidence(devices=list(self.devices), people=self.people)

    def to_json(self) -> dict:
        return {"incident_id": self.incident_id, "family": self.family,
                "first_at": self.first_at.isoformat(), "last_at": self.last_at.isoformat(),
                "devices": self.devices, "people": self.people,
                **({"muted": self.muted} if self.muted else {})}

    @classmethod
    def from_json(cls, data: dict) -> Cluster:
        return cls(data["incident_id"], data["family"], datetime.fromisoformat(data["first_at"]),
                   datetime.fromisoformat(data["last_at"]), list(data["devices"]),
                   data["people"], data.get("muted"))


@dataclass
class SiteState:
    """What triage remembers per site: open incidents, and false alarms counted per day."""

    clusters: list[Cluster] = field(default_factory=list)
    false_alarms: dict[str, list[str]] = field(default_factory=dict)  # local day -> incidents
    flagged: str | None = None  # the last local day the site was flagged for false alarms

    def close(self, incident_id: str) -> bool:
        """Forget a closed incident: the next alarm of its family opens a new one."""
        before = len(self.clusters)
        self.clusters = [c for c in self.clusters if c.incident_id != incident_id]
        return len(self.clusters) != before

    def to_json(self) -> dict:
        return {"clusters": [c.to_json() for c in self.clusters],
                "false_alarms": self.false_alarms, "flagged": self.flagged}

    @classmethod
    def from_json(cls, data: dict | None) -> SiteState:
        data = data or {}
        return cls([Cluster.from_json(c) for c in data.get("clusters", [])],
                   {day: list(ids) for day, ids in data.get("false_alarms", {}).items()},
                   data.get("flagged"))


@dataclass(frozen=True)
class Decision:
    """`open` a new incident, `join` one (merging `merges` into it), `attach` a restore to one
    without touching its window, `record` on the device only, or a `duplicate` of an alarm
    already decided (`incident_id` is where it went, None if it was only recorded)."""

    action: Action
    incident_id: str | None
    family: str
    merges: tuple[str, ...] = ()
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def opens(self) -> bool:
        return self.action == "open"


def decide(alarm: Alarm, state: SiteState, seen: str | None | bool, window: timedelta,
           site: str = "", lands: Callable[[str], bool] | None = None) -> Decision:
    """Decide for one alarm and update `state` in place (unless it is a duplicate).

    `seen`: False if this alarm id is new, else the incident it went to (None: recorded only).
    `site` is the resolved site's key, part of a new incident's id; `lands`, which ids the
    caller would rather have (see `incident_id_for`)."""
    family = family_of(alarm)
    if seen is not False:
        return Decision("duplicate", seen if isinstance(seen, str) else None, family)
    if alarm.signal == "test":
        return Decision("record", None, family)
    if alarm.signal == "restore":
        return _restore(alarm, state, window)

    at = alarm.occurred_at
    _forget_old(state, at)
    fits = sorted((c for c in state.clusters if c.family == family and c.covers(at, window)),
                  key=lambda c: (c.first_at, c.incident_id))
    if not fits:
        cluster = Cluster(incident_id_for(site or alarm.site_id or "", family, alarm, lands),
                          family, at, at)
        cluster.add(alarm)
        state.clusters.append(cluster)
        return Decision("open", cluster.incident_id, family, evidence=cluster.evidence())
    keep, merged = fits[0], fits[1:]
    for other in merged:
        keep.absorb(other)
        state.clusters.remove(other)
    keep.add(alarm)
    return Decision("join", keep.incident_id, family,
                    merges=tuple(c.incident_id for c in merged), evidence=keep.evidence())


def _restore(alarm: Alarm, state: SiteState, window: timedelta) -> Decision:
    by_device = f"maintenance:{alarm.device_id}" if alarm.device_id else None
    hazard = family_of(alarm)  # a drill's restore looks among the drills
    for family in (by_device, hazard):
        for c in state.clusters:
            # a muted cluster is no incident: its restore is recorded on the device only
            if family and c.family == family and not c.muted and c.covers(alarm.occurred_at,
                                                                          window):
                return Decision("attach", c.incident_id, c.family)
    return Decision("record", None, family_of(alarm))


def _forget_old(state: SiteState, at: datetime) -> None:
    """Drop time-windowed incidents no alarm can reach any more (maintenance ones wait to be
    fixed)."""
    newest = max([at, *(c.last_at for c in state.clusters)])
    state.clusters = [c for c in state.clusters
                      if is_maintenance(c.family) or c.last_at >= newest - RETENTION]
