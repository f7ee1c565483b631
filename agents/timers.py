"""Timers: the deadlines triage and confirmation watch, over indexes derived from the tables.

- Offline devices (`health.DueIndex`, every `offline_check` seconds): a device past its due
  time gets its offline trouble alarm on `whistle.alarms`.
- Positive alarm sequence (`Whistle.verifications`, every `pas_check` seconds): an unconfirmed
  incident whose verification missed its deadline gets a `confirm` request on
  `whistle.incident-updates`; the incident stage checks again before it confirms.
- Task deadlines (`Whistle.deadlines`, tasks by the second they next need looking at, every
  `escalation_check` seconds): a task past `ack_due` or `complete_due`, or due for an
  escalation rule's next firing, gets an `Escalation` on `whistle.escalations`
  (`deadlines.due_escalations`); the escalation stage checks again before it applies one.

Timers never write tables (Faust allows that only while processing a message): they send
messages whose handlers do. Their ids are deterministic, so a check that runs twice, or on a
restarted worker, changes nothing twice. The indexes live in memory and are rebuilt from the
tables after every rebalance, once recovery is done: a restarted worker forgets nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, cast

from agents.logic.deadlines import due_escalations
from agents.logic.health import DeviceState, offline_alarm
from schemas import FINAL_STATUSES, IncidentUpdate, Task, topics
from schemas.codec import dump

if TYPE_CHECKING:
    from faust.tables.manager import TableManager

    from streams.worker import Whistle

__all__ = ["RESEND_AFTER", "rebuild", "register"]

RESEND_AFTER = timedelta(seconds=30)
"""An escalation sent and not applied within this is sent again (same id: applied once)."""


def rebuild(w: Whistle) -> None:
    """Derive the indexes from the tables this worker holds."""
    w.verifications.clear()
    w.escalating.clear()
    w.deadlines = type(w.deadlines)(resolution=w.deadlines.resolution)
    w.open_tasks.rebuild(w.tables.tasks.values())
    w.track_deadlines(Task.model_validate(v) for v in w.tables.tasks.values()
                        if v["status"] not in FINAL_STATUSES)
    for value in w.tables.tasks.values():
        if value.get("verification") and value["status"] in ("dispatched", "acknowledged",
                                                             "in_progress"):
            incident = w.tables.incidents.get(value["incident_id"])
            if incident and incident["confirmation"] == "unconfirmed":
                w.track_verification(None, [Task.model_validate(value)])
    for device_id, value in w.tables.devices.items():
        state = DeviceState.from_json(value)
        if state is not None and state.reported < state.last_seen:
            w.due.schedule(device_id, state.due)


async def check_verifications(w: Whistle) -> None:
    now = w.clock()
    for incident_id, due in [(i, d) for i, d in w.verifications.items() if d <= now]:
        del w.verifications[incident_id]
        stored = w.tables.incidents.get(incident_id)
        if not stored or stored["confirmation"] != "unconfirmed":
            continue
        update = IncidentUpdate(
            update_id=f"{incident_id}:pas:{int(due.timestamp())}", incident_id=incident_id,
            action="confirm", by="whistle", note="positive alarm sequence deadline", at=now)
        await w.send(topics.INCIDENT_UPDATES, incident_id, dump(update))


async def check_deadlines(w: Whistle) -> None:
    now = w.clock()
    for task_id in w.deadlines.pop_due(int(now.timestamp()) + 1):
        stored = w.tables.tasks.get(task_id)
        if stored is None:
            continue
        task = Task.model_validate(stored)
        due = [e for e in due_escalations(task, w.rules_of(task), now)
               if not _under_way(w, e.escalation_id, now)]
        if not due:  # due later within this second, or sent and not applied yet: look again
            w.track_deadlines([task])
        for esc in due:  # applying it puts the task back in the index
            w.escalating[esc.escalation_id] = now
            await w.send(topics.ESCALATIONS, esc.incident_id, dump(esc))


def _under_way(w: Whistle, escalation_id: str, now) -> bool:
    """Sent lately and not applied yet (the agent drops it from `escalating` when it does):
    not sent again unless it has been that long that it may be lost."""
    sent = w.escalating.get(escalation_id)
    return sent is not None and now - sent < RESEND_AFTER


async def check_offline(w: Whistle) -> None:
    now = w.clock()
    for device_id in w.due.pop_due(int(now.timestamp())):
        state = DeviceState.from_json(w.tables.devices.get(device_id))
        if state is None or state.reported >= state.last_seen:
            continue
        alarm = offline_alarm(device_id, state).model_copy(update={"received_at": now})
        w.metrics.devices_offline.inc()
        await w.send(topics.ALARMS, w.site(state.site_id).triage_key, dump(alarm))


def register(w: Whistle) -> None:
    stale = {"indexes": True}

    @w.app.on_rebalance_complete.connect
    async def on_rebalanced(sender: object, /, *args: object, **kwargs: object) -> None:
        stale["indexes"] = True

    def ready() -> bool:
        # Faust's TableManagerT omits the `recovery` its TableManager has
        tables = cast("TableManager", w.app.tables)
        if w.app.in_recovery or not tables.recovery.completed.is_set():
            stale["indexes"] = True
            return False
        if stale["indexes"]:
            rebuild(w)
            stale["indexes"] = False
        return True

    @w.app.timer(w.settings.pas_check)
    async def positive_alarm_sequence() -> None:
        if ready():
            await check_verifications(w)

    @w.app.timer(w.settings.escalation_check)
    async def task_deadlines() -> None:
        if ready():
            await check_deadlines(w)

    @w.app.timer(w.settings.offline_check)
    async def offline_devices() -> None:
        if ready():
            await check_offline(w)
