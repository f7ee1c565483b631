"""Device health (pure): heartbeats, offline detection, false alarms per device and site.

Every message from a device is a sign of life; `signal: test` is the cheap heartbeat (it
opens nothing). A device silent past its `heartbeat` interval (registry, default 24 h) gets one
synthetic `trouble` alarm, `offline:<device>:<last seen>`, which triage handles like any other:
a maintenance incident for that device until it is fixed.

Sized for 500,000 devices reporting hourly (~140 heartbeats/s): a heartbeat costs one table
write and an O(1) move in `DueIndex`, an in-memory index of due times in one-minute buckets
that is rebuilt from the table after a restart; the offline check only looks at buckets that
are due. `python -m agents.logic.health` measures both.

    >>> state = seen(None, heartbeat, site_id="lab-3", silence=timedelta(hours=24))
    >>> offline_alarm("smk-1", state).alarm_id
    'offline:smk-1:1684217000'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from agents.logic.correlation import SiteState
from schemas import Alarm, SiteEvent
from schemas.common import format_duration

__all__ = ["FALSE_ALARMS_PER_DAY", "HYSTERESIS", "DeviceState", "DueIndex", "battery_alarm",
           "count_false_alarm", "false_alarm_flag", "is_battery_report", "is_offline_report",
           "offline_alarm", "seen"]

HYSTERESIS = 5.0
"""Percent above the low-battery threshold a battery must reach to end its low period."""

FALSE_ALARMS_PER_DAY = 5
"""GB 50440: a site with more false alarms than this in one day is flagged."""

_CHINA = timezone(timedelta(hours=8))
_KEEP_DAYS = 7


@dataclass
class DeviceState:
    """What is known of one device; stored compactly (a JSON list) because there may be
    half a million of them."""

    site_id: str
    kind: str
    last_seen: int        # epoch seconds of the latest occurred_at heard from it
    silence: int          # seconds it may stay silent before it counts as offline
    reported: int = 0     # the last_seen for which it was reported offline
    false_alarms: int = 0
    last_signal: str = "alarm"
    battery: float | None = None   # percent, the newest reading
    signal: float | None = None    # RSSI in dBm, the newest reading
    low_since: int = 0             # epoch of the reading that began the low period (0: none)
    battery_reported: int = 0      # the low_since whose battery alarm triage has seen

    @property
    def due(self) -> int:
        return self.last_seen + self.silence

    def to_json(self) -> list:
        return [self.site_id, self.kind, self.last_seen, self.silence, self.reported,
                self.false_alarms, self.last_signal, self.battery, self.signal,
                self.low_since, self.battery_reported]

    @classmethod
    def from_json(cls, data: list | None) -> DeviceState | None:
        return cls(*data) if data else None


def is_offline_report(alarm: Alarm) -> bool:
    return alarm.signal == "trouble" and alarm.attributes.get("trouble") == "offline" \
        and alarm.alarm_id.startswith("offline:")


def is_battery_report(alarm: Alarm) -> bool:
    return alarm.signal == "trouble" and alarm.attributes.get("trouble") == "battery" \
        and alarm.alarm_id.startswith("battery:")


def _readings(state: DeviceState, alarm: Alarm) -> bool:
    """Take the battery and signal an alarm carries (checked numbers: `schemas.alarm`):
    whether either changed."""
    changed = False
    for name in ("battery", "signal"):
        value = alarm.attributes.get(name)
        if value is not None and getattr(state, name) != float(value):
            setattr(state, name, float(value))
            changed = True
    return changed


def seen(state: DeviceState | None, alarm: Alarm, *, site_id: str,
         silence: timedelta) -> DeviceState | None:
    """The device's state after `alarm`, or None when nothing changed (a replay, an older
    message). Whistle's own offline report is not a sign of life: it marks the report."""
    at = int(alarm.occurred_at.timestamp())
    secs = int(silence.total_seconds())
    if is_offline_report(alarm):
        if state is None or state.reported >= int(alarm.attributes.get("last_seen_epoch", 0)):
            return None
        state.reported = int(alarm.attributes["last_seen_epoch"])
        return state
    if is_battery_report(alarm):
        since = int(alarm.attributes.get("low_since_epoch", 0))
        if state is None or state.battery_reported >= since:
            return None
        state.battery_reported = since
        return state
    if state is None:
        state = DeviceState(site_id, alarm.kind, at, secs, last_signal=alarm.signal)
        _readings(state, alarm)
        return state
    # readings of the same second (last_seen is whole seconds) are newer ones
    fresh = at == state.last_seen and _readings(state, alarm)
    if at <= state.last_seen and (state.site_id, state.silence) == (site_id, secs) \
            and not fresh:
        return None
    if at > state.last_seen:
        state.last_seen, state.last_signal = at, alarm.signal
        _readings(state, alarm)
    state.site_id, state.silence = site_id, secs
    return state


def offline_alarm(device_id: str, state: DeviceState) -> Alarm:
    """The trouble alarm for a device silent past its interval: deterministic, so the check
    may run again (or on another worker) without a second incident."""
    last = datetime.fromtimestamp(state.last_seen, UTC)
    silent = timedelta(seconds=state.silence)
    return Alarm(
        alarm_id=f"offline:{device_id}:{state.last_seen}", kind=state.kind, signal="trouble",
        site_id=state.site_id, device_id=device_id, occurred_at=last + silent,
        description=f"设备离线: {device_id} 超过 {format_duration(silent)} 未上报 "
                    f"(last heard {last.astimezone(_CHINA).isoformat()})",
        attributes={"trouble": "offline", "last_seen": last.isoformat(),
                    "last_seen_epoch": state.last_seen, "silent_for": format_duration(silent)})


def battery_alarm(device_id: str, state: DeviceState, threshold: float) -> Alarm | None:
    """Move the device's low period by its newest battery reading (a low one begins it at
    `last_seen`, one above `threshold + HYSTERESIS` ends it) and give the period's trouble
    alarm while triage has not seen it: deterministic, so sending it again opens nothing."""
    if state.battery is None:
        return None
    if state.low_since and state.battery > threshold + HYSTERESIS:
        state.low_since = 0
    elif not state.low_since and state.battery <= threshold:
        state.low_since = state.last_seen
    if not state.low_since or state.battery_reported >= state.low_since:
        return None
    since = datetime.fromtimestamp(state.low_since, UTC)
    return Alarm(
        alarm_id=f"battery:{device_id}:{state.low_since}", kind=state.kind, signal="trouble",
        site_id=state.site_id, device_id=device_id, occurred_at=since,
        description=f"设备电量低: {device_id} 电量 {state.battery:g}% (阈值 {threshold:g}%), "
                    f"请更换电池 (GB 20517 电池故障)",
        attributes={"trouble": "battery", "battery": state.battery, "threshold": threshold,
                    "low_since": since.isoformat(), "low_since_epoch": state.low_since})


class DueIndex:
    """Keys (devices, tasks) by the `resolution` seconds they fall due: O(1) to move one, and
    the check touches only what is due. Derived from a table, so it is rebuilt (not
    recovered) after a restart.

        >>> index.schedule("smk-1", due=1_700_000_000)
        >>> index.pop_due(now=1_700_000_060)
        ['smk-1']
    """

    def __init__(self, resolution: int = 60) -> None:
        self.resolution = resolution
        self._buckets: dict[int, set[str]] = {}
        self._bucket_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._bucket_of)

    def schedule(self, device_id: str, due: int) -> None:
        bucket = due // self.resolution
        old = self._bucket_of.get(device_id)
        if old == bucket:
            return
        if old is not None:
            self._buckets[old].discard(device_id)
        self._buckets.setdefault(bucket, set()).add(device_id)
        self._bucket_of[device_id] = bucket

    def cancel(self, key: str) -> None:
        bucket = self._bucket_of.pop(key, None)
        if bucket is not None:
            self._buckets[bucket].discard(key)

    def pop_due(self, now: int) -> list[str]:
        """Devices whose bucket has passed, removed from the index (seeing them again puts
        them back)."""
        last = now // self.resolution - 1
        out: list[str] = []
        for bucket in sorted(b for b in self._buckets if b <= last):
            for device_id in self._buckets.pop(bucket):
                del self._bucket_of[device_id]
                out.append(device_id)
        return out


def count_false_alarm(state: SiteState, event: SiteEvent) -> tuple[bool, str | None]:
    """Count a false alarm at a site once per incident, by local day: (counted now, the day
    to flag). A day is flagged when its count passes `FALSE_ALARMS_PER_DAY`, once."""
    day = event.at.astimezone(_CHINA).date().isoformat()
    kept = sorted(state.false_alarms)
    if len(kept) >= _KEEP_DAYS and day < kept[0]:
        return False, None  # older than anything kept: its day was counted and flagged already
    ids = state.false_alarms.setdefault(day, [])
    if event.incident_id in ids:
        return False, None
    ids.append(event.incident_id)
    for old in sorted(state.false_alarms)[:-_KEEP_DAYS]:
        del state.false_alarms[old]
    if len(ids) == FALSE_ALARMS_PER_DAY + 1:  # the one that passes the threshold: once a day
        state.flagged = max(day, state.flagged or day)
        return True, day
    return True, None


def false_alarm_flag(site_id: str, day: str, incident_ids: list[str], at: datetime) -> Alarm:
    """The alarm that notifies the safety office of a site with too many false alarms: once a
    day (its id is the site and the day)."""
    return Alarm(
        alarm_id=f"false-alarms:{site_id}:{day}", kind="repeated_false_alarms", signal="alarm",
        site_id=site_id, occurred_at=at,
        description=f"{day} 误报 {len(incident_ids)} 次, 超过每日 {FALSE_ALARMS_PER_DAY} 次 "
                    f"(GB 50440): 请督促维保单位整改",
        attributes={"day": day, "false_alarms": len(incident_ids), "incidents": incident_ids})


def _bench() -> None:  # pragma: no cover - prints figures
    import os
    import random
    import resource
    import time

    n = int(os.environ.get("DEVICES", "500000"))
    base = 1_700_000_000
    index = DueIndex()
    states: dict[str, list] = {}
    hb = Alarm(alarm_id="hb", kind="smoke", signal="test", site_id="s", device_id="d",
               occurred_at=datetime.fromtimestamp(base, UTC))
    silence = timedelta(hours=24)
    ids = [f"dev-{i:06d}" for i in range(n)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the ids are the bench's own

    def hour(start: int, order: range | list[int]) -> float:
        """One heartbeat from every device, spread over the hour from `start`: us per beat."""
        t = time.perf_counter()
        for i in order:
            device_id = ids[i]
            alarm = hb.model_copy(update={"device_id": device_id, "occurred_at":
                                          datetime.fromtimestamp(start + i * 3600 // n,
                                                                 UTC)})
            state = seen(DeviceState.from_json(states.get(device_id)), alarm,
                         site_id=f"site-{i % 5000}", silence=silence)
            if state is not None:
                states[device_id] = state.to_json()
                index.schedule(device_id, state.due)
        return (time.perf_counter() - t) / n * 1e6

    first = hour(base, range(n))  # every device is new: its state is created
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    order = list(range(n))
    random.shuffle(order)
    # the steady state: read the stored state, update it, write it, move the device's bucket
    per = hour(base + 3600, order)
    t = time.perf_counter()
    due = index.pop_due(base + 3600 + 24 * 3600 + 1800)
    check = time.perf_counter() - t
    print(f"{n} devices: heartbeat (state + index) {per:.1f} us each "
          f"({first:.1f} us for a device's first); "
          f"offline check found {len(due)} due in {check * 1000:.0f} ms; "
          f"max RSS grew {(rss1 - rss0) / 1024:.0f} MB for states and index")


if __name__ == "__main__":
    _bench()
