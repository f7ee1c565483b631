"""Maintenance silences (检修屏蔽), pure: which silence holds an alarm back, and what breaks
through one.

Safety first: a silence only ever holds back what a maintenance crew makes. A trouble or
supervisory signal, or a single detector's alarm, at a site, device, grid or site type under
an active silence is *muted*: triage sends it to the silence's own timeline (kept under the
silence id) and it dispatches nothing. A person's report (a fire report, anything with a
reporter, a report the duty officer entered), a manual call point and a confirmed fire (two
detectors or more in the incident's evidence) break through any silence and go on as usual,
their `alarm_received` entry naming the silence they broke.

A muted alarm still counts as evidence: its cluster stays in the site's state, marked
`muted`, so a second detector (or a person's report) joining it opens the incident with
everything seen, and an alarm after the silence ended opens it as any alarm would.

    >>> held = check(silences, alarm, site, decision, state, now)
    >>> held.silence_id, held.muted
    ('sil-3f2a9c0d1e', True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from agents.logic.correlation import PEOPLE_KINDS, Decision, SiteState
from agents.logic.incidents import BY_HAND
from schemas import Alarm, Evidence, Site
from schemas.silence import Silence

__all__ = ["Held", "active", "apply_record", "breaks_through", "check", "matches"]


@dataclass(frozen=True)
class Held:
    """A silence matched the alarm: `muted` (held back) or not (it broke through)."""

    silence_id: str
    muted: bool


def matches(silence: Silence, site: Site, device_id: str | None) -> bool:
    """Whether every matcher the silence gives matches the alarm's site and device."""
    m = silence.matchers
    return ((m.site_id is None or m.site_id == site.site_id)
            and (m.device_id is None or m.device_id == device_id)
            and (m.grid is None or m.grid == site.grid)
            and (m.site_type is None or m.site_type == site.type))


def active(silences: Iterable[Silence], site: Site, device_id: str | None,
           now: datetime) -> Silence | None:
    """The active silence that covers the site and device now (the one ending last, when
    several do), or None."""
    found = [s for s in silences if s.state_at(now) == "active" and matches(s, site, device_id)]
    return max(found, key=lambda s: (s.ends_at, s.silence_id), default=None)


def breaks_through(alarm: Alarm, evidence: Evidence) -> bool:
    """A person's report, a manual call point, or a confirmed fire (two detectors or more)."""
    return (alarm.kind in PEOPLE_KINDS or alarm.reporter is not None
            or BY_HAND in alarm.attributes or evidence.people or len(evidence.devices) >= 2)


def check(silences: Iterable[Silence], alarm: Alarm, site: Site, decision: Decision,
          state: SiteState, now: datetime) -> Held | None:
    """Whether a silence holds back the alarm triage just decided (`open` or `join`), with
    the cluster it went to marked (muted) or unmarked (it goes on to its incident) in `state`.
    None when no silence covers it, or when it merges incidents (the merge must reach them).

    A single detector's alarm is muted only where no incident of its hazard is open (its
    cluster is new, or muted itself): joining an open incident dispatches nothing anyway, and
    belongs on that incident's timeline."""
    cluster = next((c for c in state.clusters if c.incident_id == decision.incident_id), None)
    if cluster is None or decision.action not in ("open", "join") or decision.merges:
        return None
    silence = active(silences, site, alarm.device_id, now)
    if silence is None:
        cluster.muted = None  # no silence (any more): this alarm opens it, if it was muted
        return None
    if breaks_through(alarm, cluster.evidence()):
        cluster.muted = None
        return Held(silence.silence_id, muted=False)
    if alarm.signal in ("trouble", "supervisory") or decision.opens or cluster.muted:
        cluster.muted = silence.silence_id
        return Held(silence.silence_id, muted=True)
    return None  # a detector joining an open incident: recorded there, as any alarm


def apply_record(silences: dict[str, Silence], key: bytes | str,
                 value: bytes | None) -> str | None:
    """Apply one record of `whistle.silences` (None value: removed); returns what is wrong
    with it, or None. For `streams.runtime.registry.RegistryReader`, which reads the topic."""
    name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    if value is None:
        silences.pop(name, None)
        return None
    try:
        silence = Silence.model_validate_json(value)
    except ValueError as exc:
        return f"silence {name!r}: {str(exc)[:200]}"
    if silence.silence_id != name:
        return f"silence {name!r}: the record holds {silence.silence_id!r}"
    silences[name] = silence
    return None
