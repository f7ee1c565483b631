"""What an incident does (pure): open on its first alarm (judged confirmed or not), attach
later ones, confirm, merge, close, and add the steps that become ready.

    >>> step = on_triaged(None, triaged, playbooks, None, list, now)   # one smoke detector
    >>> step.incident.confirmation, [t.department for t in step.new_tasks]
    ('unconfirmed', ['property'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agents.logic.confirmation import judge, pas_expired, verdict_of
from agents.logic.taskstate import cancel, settled
from agents.logic.timelines import entry
from playbooks import Facts, LoadedPlaybook, PlaybookSet, match, plan_tasks
from schemas import (
    LEVELS,
    Alarm,
    Incident,
    IncidentUpdate,
    PlaybookRef,
    Site,
    SiteEvent,
    Task,
    TimelineEntry,
    Triaged,
)

__all__ = ["BY_HAND", "IncidentStep", "SameLevel", "advance", "by_hand", "change_level",
           "close_if_done", "facts_of", "on_task_changed", "on_triaged", "on_update",
           "opening_entries", "silenced_entry"]


BY_HAND = "dispatch"
"""The alarm attribute that carries what the duty officer chose for a report they entered;
reserved: an alarm posted with it is refused."""


@dataclass
class IncidentStep:
    """The outcome of one event. `changed` is False for a replay that changes nothing.
    `updates` go to other incidents (merges); `site_events` tell triage (closings)."""

    incident: Incident
    changed: bool
    new_tasks: list[Task] = field(default_factory=list)
    changed_tasks: list[Task] = field(default_factory=list)  # e.g. cancelled at a closing
    entries: list[TimelineEntry] = field(default_factory=list)
    updates: list[IncidentUpdate] = field(default_factory=list)
    site_events: list[SiteEvent] = field(default_factory=list)


def facts_of(alarm: Alarm, site: Site) -> Facts:
    """What matching sees of an alarm at a site. A level is taken from `attributes.level`."""
    level = alarm.attributes.get("level")
    return Facts(kind=alarm.kind, signal=alarm.signal, site_type=site.type, site_id=site.site_id,
                 grid=site.grid, level=level if level in LEVELS else None, at=alarm.occurred_at,
                 attributes=alarm.attributes)


def _received(triaged: Triaged, now: datetime,
              type_: str = "alarm_received") -> TimelineEntry:
    alarm = triaged.alarm
    detail = {"kind": alarm.kind, "signal": alarm.signal, "site_id": triaged.site.site_id,
              "occurred_at": alarm.occurred_at.isoformat()}
    for name in ("device_id", "description"):
        if getattr(alarm, name):
            detail[name] = getattr(alarm, name)
    if alarm.reporter and alarm.reporter.name:
        detail["reporter"] = alarm.reporter.name
    if triaged.broke_silence:
        detail["broke_silence"] = triaged.broke_silence
    return entry(triaged.incident_id, type_, now, alarm_id=alarm.alarm_id, detail=detail)


def silenced_entry(triaged: Triaged, now: datetime) -> TimelineEntry:
    """What a silence's timeline records of an alarm it held back (`alarm_silenced`): what
    `alarm_received` would have said on an incident."""
    return _received(triaged, now, "alarm_silenced")


def _dispatched(task: Task, at: datetime) -> TimelineEntry:
    return entry(task.incident_id, "task_dispatched", at, task_id=task.task_id,
                 department=task.department, revision=1,
                 detail={"step": task.step, "action": task.action, "unit": task.unit,
                         "ack_due": task.ack_due.isoformat(),
                         "complete_due": task.complete_due.isoformat()})


def _with_site(incident: Incident, site_id: str) -> Incident:
    """Another unit of the incident's building alarmed: it joins `sites`."""
    if site_id == incident.site_id or site_id in (incident.sites or ()):
        return incident
    return incident.model_copy(update={"sites": [*(incident.sites or ()), site_id]})


def by_hand(alarm: Alarm) -> dict:
    """What the duty officer said of a report they entered (`POST /api/v1/incidents`): who
    (`by`), and the `level` and `playbook` they chose, if any; {} for any other alarm."""
    hand = alarm.attributes.get(BY_HAND)
    return hand if isinstance(hand, dict) else {}


def opening_entries(incident: Incident, site: Site, loaded: LoadedPlaybook, why: str,
                    tasks: list[Task], at: datetime, by: str | None = None
                    ) -> list[TimelineEntry]:
    """incident_opened, playbook_matched and the first tasks' task_dispatched. Their ids come
    from the incident, so sending them again (after a restart) records nothing twice."""
    iid, pb = incident.incident_id, loaded.playbook
    return [
        entry(iid, "incident_opened", at, by=by, detail={
            "site_id": incident.site_id, "site_name": site.name, "site_type": site.type,
            "address": site.address, "level": incident.level, "kind": incident.kind}),
        entry(iid, "playbook_matched", at, detail={
            "playbook_id": pb.id, "version": pb.version, "title": pb.title,
            "content_hash": loaded.content_hash, "why": why}),
        *(_dispatched(t, t.created_at) for t in tasks),
    ]


def advance(incident: Incident, loaded: LoadedPlaybook, site: Site, tasks: list[Task],
            now: datetime) -> IncidentStep:
    """Dispatch every step that is ready now and was not dispatched before. The caller counts
    the incident's revision: one event, one revision."""
    new = plan_tasks(incident, loaded.playbook, site, now,
                     planned={t.step for t in tasks},
                     completed=done_steps(tasks))
    if not new:
        return IncidentStep(incident, changed=False)
    incident = incident.model_copy(update={
        "task_ids": [*incident.task_ids, *(t.task_id for t in new)]})
    return IncidentStep(incident, changed=True, new_tasks=new,
                        entries=[_dispatched(t, now) for t in new])


def on_triaged(current: Incident | None, triaged: Triaged, playbooks: PlaybookSet,
               loaded: LoadedPlaybook | None, tasks: Callable[[], list[Task]],
               now: datetime) -> IncidentStep:
    """Open the incident (match, judge, plan, record) or attach the alarm to it: merge what
    triage merged, reopen it if it had just closed, confirm it when the evidence does, and
    dispatch what that makes ready. `loaded` is the current incident's playbook version;
    `tasks()` its tasks, asked for only when steps may have become ready."""
    alarm = triaged.alarm
    if current is None:
        if triaged.action == "attach":
            raise ValueError(f"alarm {alarm.alarm_id} restores incident {triaged.incident_id}, "
                             f"which this worker does not hold")
        # a join that overtook the opening (the urgent lane passes a backlog): it opens it,
        # and the alarm that opened it in triage joins when it comes
        return _merge(_open(triaged, playbooks, now), triaged, now)
    if alarm.alarm_id in current.alarm_ids:  # a replay: record nothing new
        return IncidentStep(current, changed=False, entries=[_received(triaged, now)])

    incident = _with_site(_with_reporter(current.with_alarm(alarm.alarm_id, alarm.occurred_at),
                                         alarm), triaged.site.site_id)
    entries = [_received(triaged, now)]
    if triaged.action == "attach" or incident.merged_into is not None or loaded is None:
        return IncidentStep(incident, changed=True, entries=entries)
    step = _merge(IncidentStep(incident, changed=True, entries=entries), triaged, now)
    step.incident = step.incident.model_copy(
        update={"evidence": step.incident.evidence.union(triaged.evidence)})
    ready_may_change = step.incident.status == "closed"
    if ready_may_change:
        _reopen(step, alarm, now)
    if step.incident.confirmation == "unconfirmed":
        verdict, why = judge(loaded.playbook, step.incident.evidence)
        if verdict == "confirmed":
            _confirm(step, why or "", now, alarm_id=alarm.alarm_id)
            ready_may_change = True
    if ready_may_change:
        step = _advance(step, loaded, triaged.site, tasks(), now)
    return step


def _merge(step: IncidentStep, triaged: Triaged, now: datetime) -> IncidentStep:
    """Take in the incidents triage merged into this one (each told so by an update)."""
    incident, alarm = step.incident, triaged.alarm
    fresh = [m for m in triaged.merges if m not in incident.merged]
    if fresh:
        step.incident = incident.model_copy(update={"merged": [*incident.merged, *fresh]})
        step.entries.append(entry(incident.incident_id, "incident_merged", now,
                                  alarm_id=alarm.alarm_id, detail={"merged": fresh}))
        step.updates += [IncidentUpdate(
            update_id=f"{m}:merge", incident_id=m, action="merge_into",
            into=incident.incident_id, by="whistle", note=f"alarm {alarm.alarm_id} bridged them",
            at=now) for m in fresh]
    return step


def _open(triaged: Triaged, playbooks: PlaybookSet, now: datetime) -> IncidentStep:
    alarm = triaged.alarm
    hand = by_hand(alarm)
    picked = playbooks.by_id.get(hand.get("playbook") or "")
    if picked is not None:
        winner, matched = picked, f"picked by {hand.get('by')}"
    else:
        result = match(playbooks, facts_of(alarm, triaged.site))
        winner, matched = result.winner, result.why
    pb = winner.playbook
    confirmation, why = judge(pb, triaged.evidence)
    level = hand.get("level") if hand.get("level") in LEVELS else pb.level
    incident = Incident(
        incident_id=triaged.incident_id, status="open", level=level,
        site_id=triaged.site.site_id, kind=alarm.kind, hazard=triaged.hazard,
        family=triaged.family, confirmation=confirmation,
        confirmed_at=now if confirmation == "confirmed" else None, confirmed_by=why,
        evidence=triaged.evidence,
        playbook=PlaybookRef(id=pb.id, version=pb.version, content_hash=winner.content_hash),
        alarm_ids=[alarm.alarm_id], task_ids=[], opened_at=now, last_alarm_at=alarm.occurred_at,
        drill=alarm.drill or None,
    )
    incident = _with_reporter(incident, alarm)
    planned = advance(incident, winner, triaged.site, [], now)  # with their task_dispatched
    entries = [_received(triaged, now), *opening_entries(
        planned.incident, triaged.site, winner, matched, [], now, by=hand.get("by")),
        *planned.entries]
    return IncidentStep(planned.incident, changed=True, new_tasks=planned.new_tasks,
                        entries=entries)


def _with_reporter(incident: Incident, alarm: Alarm) -> Incident:
    """Keep who reported it (a name or a phone), to tell them when it is closed."""
    who = alarm.reporter
    if who is None or not (who.name or who.phone) or who in incident.reporters:
        return incident
    return incident.model_copy(update={"reporters": [*incident.reporters, who]})


def on_task_changed(incident: Incident, task: Task, loaded: LoadedPlaybook, site: Site,
                    tasks: list[Task], now: datetime) -> IncidentStep:
    """After a department changed `task` (already in `tasks`): a finished verification
    confirms the incident or closes it as a false alarm; completed steps let the steps that
    wait for them go; when every task is completed the incident closes."""
    step = IncidentStep(incident, changed=False)
    if task.verification and incident.confirmation == "unconfirmed":
        verdict = verdict_of(task)
        if verdict is not None and verdict[0] == "false_alarm":
            step.incident = incident.model_copy(update={"confirmation": "false_alarm"})
            _close(step, "false_alarm", verdict[1], now, by=task.by)
            return _bumped(step, incident)
        if verdict is not None:
            _confirm(step, verdict[1], now, by=task.by, task_id=task.task_id)
    step = _advance(step, loaded, site, tasks, now)
    close_if_done(step, tasks, now)
    return _bumped(step, incident)


def done_steps(tasks: list[Task]) -> set[str]:
    """The steps the steps waiting `after` them no longer wait for: completed, or cancelled by
    the duty officer (not needed); a step taken over waits for the task that took it."""
    return {t.step for t in tasks if t.status == "completed"
            or (t.status == "cancelled" and t.replaced_by is None)}


def close_if_done(step: IncidentStep, tasks: list[Task], now: datetime) -> None:
    """Close the incident when nothing is left to do: no step newly dispatched, every task
    settled (completed, cancelled, or rejected and taken over) and at least one completed."""
    if (step.incident.status != "closed" and not step.new_tasks and tasks
            and all(settled(t) for t in tasks) and any(t.status == "completed" for t in tasks)):
        _close(step, "completed", "every task is completed", now)


def on_update(incident: Incident, update: IncidentUpdate, loaded: LoadedPlaybook, site: Site,
              tasks: list[Task], now: datetime) -> IncidentStep:
    """`confirm` (the timer saw a verification deadline pass), `merge_into`, or a person's
    `close` or `contain`. Each is checked against the incident as it is now, so a late or
    repeated request changes nothing (`changed` False: closed already, contained already)."""
    step = IncidentStep(incident, changed=False)
    if update.action == "close":
        if incident.status != "closed":
            _close_by_hand(step, update, tasks)
        return _bumped(step, incident, update.update_id)
    if update.action == "contain":
        if incident.status == "open":
            step.incident, step.changed = incident.model_copy(update={"status": "contained"}), True
            step.entries.append(entry(incident.incident_id, "incident_contained", update.at,
                                      by=update.by, revision=incident.revision + 1,
                                      detail={"note": update.note} if update.note else None))
        return _bumped(step, incident, update.update_id)
    if update.action == "merge_into":
        if incident.merged_into is None:
            step.incident = incident.model_copy(update={"merged_into": update.into})
            _close(step, "merged", f"merged into {update.into}: {update.note}", update.at,
                   site_event=False)
        return _bumped(step, incident, update.update_id)
    verify = next((t for t in tasks if t.verification), None)
    why = pas_expired(incident, verify, update.at)
    if why is not None:
        _confirm(step, why, update.at, by=update.by)
        step = _advance(step, loaded, site, tasks, now)
    return _bumped(step, incident, update.update_id)


def _advance(step: IncidentStep, loaded: LoadedPlaybook, site: Site, tasks: list[Task],
             now: datetime) -> IncidentStep:
    if step.incident.status == "closed":
        return step
    planned = advance(step.incident, loaded, site, tasks, now)
    if planned.changed:
        step.incident, step.changed = planned.incident, True
        step.new_tasks += planned.new_tasks
        step.entries += planned.entries
    return step


def _confirm(step: IncidentStep, why: str, at: datetime, *, by: str | None = None,
             alarm_id: str | None = None, task_id: str | None = None) -> None:
    step.incident = step.incident.model_copy(update={
        "confirmation": "confirmed", "confirmed_at": at, "confirmed_by": why})
    step.changed = True
    step.entries.append(entry(step.incident.incident_id, "incident_confirmed", at, by=by,
                              alarm_id=alarm_id, task_id=task_id, detail={"why": why}))


def _close(step: IncidentStep, reason: str, why: str, at: datetime, *, by: str | None = None,
           site_event: bool = True, of: str | None = None) -> None:
    inc = step.incident.model_copy(update={"status": "closed", "closed_at": at,
                                           "close_reason": reason})
    step.incident, step.changed = inc, True
    step.entries.append(entry(inc.incident_id, "incident_closed", at, by=by,
                              revision=inc.revision + 1,
                              detail={"reason": reason, "why": why,
                                      **({"merged_into": inc.merged_into}
                                         if inc.merged_into else {}),
                                      **({"duplicate_of": of} if of else {})}))
    if site_event:
        step.site_events.append(SiteEvent(
            event_id=f"{inc.incident_id}:closed:{inc.revision + 1}", site_id=inc.site_id,
            type="incident_closed", incident_id=inc.incident_id, family=inc.family or inc.hazard,
            reason=reason, devices=inc.evidence.real_devices(), at=at))


def _close_by_hand(step: IncidentStep, update: IncidentUpdate, tasks: list[Task]) -> None:
    """结案 / 撤销: every open task cancelled (its department is told by the snapshot on its
    topic), then the incident closed with the person's reason; the reporters hear back as for
    any closing."""
    reason = update.reason or "handled"
    why = update.note or {"handled": "closed by hand", "false_alarm": "a false alarm",
                          "duplicate": f"a duplicate of {update.into}"}[reason]
    for task in tasks:
        cancelled = cancel(task, update.at, update.by, f"事件已结案：{why}")
        if cancelled is not None:
            step.changed_tasks.append(cancelled)
            step.entries.append(entry(task.incident_id, "task_cancelled", update.at,
                                      task_id=task.task_id, department=task.department,
                                      by=update.by, revision=cancelled.revision,
                                      detail={"status": "cancelled", "note": cancelled.note}))
    if reason == "false_alarm":
        step.incident = step.incident.model_copy(update={"confirmation": "false_alarm"})
    _close(step, reason, why, update.at, by=update.by,
           of=update.into if reason == "duplicate" else None)


def _reopen(step: IncidentStep, alarm: Alarm, at: datetime) -> None:
    """An alarm that raced the incident's closing: safer to take it up again than to lose it."""
    was = step.incident
    step.incident = was.model_copy(update={
        "status": "open", "closed_at": None, "close_reason": None,
        "confirmation": "unconfirmed" if was.confirmation == "false_alarm" else was.confirmation})
    step.entries.append(entry(was.incident_id, "incident_reopened", at, alarm_id=alarm.alarm_id,
                              detail={"was": was.close_reason}))


def _bumped(step: IncidentStep, before: Incident, update_id: str | None = None) -> IncidentStep:
    """One event, one revision."""
    if step.changed:
        step.incident = step.incident.model_copy(update={
            "revision": before.revision + 1,
            **({"last_update_id": update_id} if update_id else {})})
    return step


class SameLevel(ValueError):
    """The incident is at that level already (HTTP 409)."""


def change_level(incident: Incident, update: IncidentUpdate, loaded: LoadedPlaybook, site: Site,
                 tasks: list[Task], now: datetime) -> IncidentStep:
    """Set the incident's level and dispatch the steps the new level reaches (`when:
    level_at_least`); steps already dispatched are never dispatched again."""
    if update.level == incident.level:
        raise SameLevel(f"incident {incident.incident_id} is at level {incident.level} already")
    changed = incident.model_copy(update={"level": update.level, "revision": incident.revision + 1,
                                          "last_update_id": update.update_id})
    recorded = entry(incident.incident_id, "level_changed", update.at, by=update.by,
                     revision=changed.revision,
                     detail={"from": incident.level, "to": update.level,
                             **({"note": update.note} if update.note else {})})
    planned = advance(changed, loaded, site, tasks, now)
    return IncidentStep(planned.incident, changed=True, new_tasks=planned.new_tasks,
                        entries=[recorded, *planned.entries])
