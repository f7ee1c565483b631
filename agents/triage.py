"""Triage agent: `whistle.alarms` -> `whistle.triaged`, and the device table.

Resolves where the alarm is (`locate`), notes the device's sign of life (`health`),
deduplicates by alarm_id and correlates into incidents per site, or per building for sites
that share one (`correlation`, keyed by `Site.triage_key`). A maintenance
silence may hold the alarm back to the silence's own timeline (`silences`).

A gateway's retry (the same alarm_id in a later message) stops here. The *same message* seen
again (a replay after a crash, before its offset was committed) is forwarded again, because
the first run may have died before sending it; the incident stage drops what it has.

A new incident's id is chosen on the partition the alarm came from, so dispatch runs in the
same step (`Whistle.pass_on`): `whistle.triaged` carries only what cannot (an incident opened
with another partition count, a silence's timeline).

An alarm whose key is not its site's `triage_key` (a producer keyed a building's unit by its
site id, or the registry changed since the ingest) is sent on, once, with that key: triage
state lives in the partition of its key.

The urgent lane (`whistle.alarms.urgent` -> `whistle.triaged.urgent`, see
`streams.runtime.lookahead`) runs this same stage on copies of people's fire reports read ahead
of a backlog. Whichever copy of an alarm comes first decides; the other is a retry of it, so it
stops here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agents.logic.correlation import SiteState, decide, hazard_of
from agents.logic.health import DeviceState, battery_alarm, seen
from agents.logic.silences import check
from schemas import Alarm, Evidence, Triaged, topics
from schemas.codec import dump
from schemas.topics import ORIGIN

if TYPE_CHECKING:
    from streams.worker import Whistle

__all__ = ["origin", "register"]


async def handle(w: Whistle, alarm: Alarm, message) -> None:
    await w.registry_read()  # never resolve against a half-read registry
    site = w.locate(alarm).site
    key = site.triage_key  # one building, one state: its units' alarms correlate
    urgent = message.topic == topics.ALARMS_URGENT
    if urgent:  # a copy: the original's position, marked
        position = f"u:{origin(message) or f'{message.partition}:{message.offset}'}"
    else:
        position = f"{message.partition}:{message.offset}"
        if w.lookahead is not None:
            w.lookahead.passed(message.partition, message.offset)
    if (message.key or b"") != key.encode("utf-8"):
        # keyed by its site (as a producer of the contract may) while the site shares a
        # building, or resolved elsewhere since: on to the partition of its triage state
        await w.send(topics.ALARMS, key, message.value)
        return
    if alarm.device_id:
        low = _note_device(w, alarm, key)
        if low is not None:  # its own trouble alarm: a maintenance task, once per low period
            await w.send(topics.ALARMS, key, dump(low.model_copy(update={
                "received_at": alarm.received_at or w.clock()})))
    # [incident, position, action, merges]; none for an alarm not decided yet
    recorded: list[Any] = w.tables.alarms_seen.get(alarm.alarm_id) or []
    state = SiteState.from_json(w.tables.sites.get(key))
    onward = topics.TRIAGED_URGENT if urgent else topics.TRIAGED
    decision = decide(alarm, state, recorded[0] if recorded else False,
                      w.settings.correlation_window, site=key,
                      lands=_here(w.lands(onward), message.partition))
    if decision.action != "duplicate" or not (urgent or recorded[1] == f"u:{position}"):
        # each message on whistle.alarms counted once: by whichever lane decided it
        w.metrics.alarms.labels(kind=alarm.kind if alarm.known_kind else "unknown",
                                result=decision.action).inc()
    if decision.action == "record" or decision.incident_id is None:
        return  # nothing for an incident: on the device only
    target, broke = decision.incident_id, None
    if decision.action == "duplicate":
        if recorded[1] != position:  # a retry, or the other lane's copy: decided already
            return
        action, merges = recorded[2], recorded[3]
        cluster = next((c for c in state.clusters if c.incident_id == recorded[0]), None)
        evidence = cluster.evidence() if cluster else Evidence()
    else:
        action, merges = decision.action, list(decision.merges)
        evidence = decision.evidence or Evidence()
        # a maintenance silence (检修屏蔽): held back to the silence's timeline, or broken
        held = check(w.silences.values(), alarm, site, decision, state,
                     alarm.received_at or w.clock())
        if held is not None and held.muted:
            action, target = "silenced", held.silence_id
        elif held is not None:
            broke = held.silence_id
        w.tables.sites[key] = state.to_json()
        w.tables.alarms_seen[alarm.alarm_id] = [target, position, action, merges]
    await w.pass_on(onward, target, Triaged(
        alarm=alarm, incident_id=target, action=action, hazard=hazard_of(alarm.kind),
        family=decision.family, merges=merges, evidence=evidence, site=site,
        broke_silence=broke), message)


def _here(lands: Callable[[str], int] | None, partition: int) -> Callable[[str], bool] | None:
    """Whether an incident id lands on `partition`, the one the alarm came from (None: the
    producer cannot tell yet; any id will do)."""
    if lands is None:
        return None
    return lambda incident_id: lands(incident_id) == partition


def origin(message) -> str | None:
    """Where on `whistle.alarms` the urgent lane's copy was read ("partition:offset")."""
    for name, value in message.headers or ():
        if name == ORIGIN:
            return bytes(value).decode("ascii", "replace")
    return None


def _note_device(w: Whistle, alarm: Alarm, site_id: str) -> Alarm | None:
    device_id = alarm.device_id
    assert device_id is not None
    registered = w.registry.device(device_id)
    silence = registered.heartbeat if registered else w.settings.device_silence
    state = seen(DeviceState.from_json(w.tables.devices.get(device_id)), alarm,
                 site_id=site_id, silence=silence)
    if state is None:
        return None
    low = battery_alarm(device_id, state, w.settings.low_battery)
    w.tables.devices[device_id] = state.to_json()
    if state.reported < state.last_seen:
        w.due.schedule(device_id, state.due)
    return low


def register(w: Whistle) -> None:
    def checked_against_broker_time(message) -> dict:
        """An alarm's occurred_at is checked against when the broker took it, not now."""
        if message.timestamp:
            return {"now": datetime.fromtimestamp(message.timestamp, UTC)}
        return {"now": w.clock()}

    w.stage(w.topics.alarms, "triage", Alarm, handle, checked_against_broker_time)
    def taken(message) -> dict:
        if w.lookahead is not None:  # whether it decodes or not: the lane has one less waiting
            w.lookahead.taken += 1
        return checked_against_broker_time(message)

    w.stage(w.topics.alarms_urgent, "triage-urgent", Alarm, handle, taken)
