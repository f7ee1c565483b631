"""Site-events agent: `whistle.site-events` -> triage's site and device tables.

An incident closed: its family starts afresh at the site. A false alarm is counted per site
and device; the sixth in a day flags the site with an alarm to the safety office (once a day).
The tables are the ones triage owns, keyed by site (by building for sites that share one,
`Site.triage_key`) like `whistle.alarms`, so the same worker holds both."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.logic.correlation import SiteState
from agents.logic.health import DeviceState, count_false_alarm, false_alarm_flag
from schemas import SiteEvent, topics
from schemas.codec import dump

if TYPE_CHECKING:
    from streams.worker import Whistle

__all__ = ["register"]


async def handle(w: Whistle, event: SiteEvent, message) -> None:
    key = w.site(event.site_id).triage_key
    state = SiteState.from_json(w.tables.sites.get(key))
    state.close(event.incident_id)
    # false alarms count per site, also in a shared building (its own record, same partition)
    counts = state if key == event.site_id else SiteState.from_json(
        w.tables.sites.get(event.site_id))
    flag = None
    if event.reason == "false_alarm" and not event.family.startswith("drill:"):
        counted, flag = count_false_alarm(counts, event)
        if counted:
            w.metrics.false_alarms.inc()
            for device_id in event.devices:
                device = DeviceState.from_json(w.tables.devices.get(device_id))
                if device is not None:
                    device.false_alarms += 1
                    w.tables.devices[device_id] = device.to_json()
    w.tables.sites[key] = state.to_json()
    if counts is not state:
        w.tables.sites[event.site_id] = counts.to_json()
    if flag is not None:
        alarm = false_alarm_flag(event.site_id, flag, counts.false_alarms[flag], event.at)
        alarm = alarm.model_copy(update={"received_at": w.clock()})
        await w.send(topics.ALARMS, key, dump(alarm))


def register(w: Whistle) -> None:
    w.stage(w.topics.site_events, "site-events", SiteEvent, handle)
