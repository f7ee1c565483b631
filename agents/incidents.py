"""What an incident does (pure): open on its first alarm, attach later ones, and add the steps
that become ready as tasks complete.

    >>> step = on_triaged(None, triaged, playbooks, now)
    >>> step.incident.status, [t.department for t in step.new_tasks]
    ('open', ['fire_brigade', 'safety_office', ...])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from playbooks import Facts, LoadedPlaybook, PlaybookSet, match, plan_tasks
from schemas import (LEVELS, Alarm, Incident, IncidentUpdate, PlaybookRef, Site, Task,
                     TimelineEntry, Triaged)

from .timelines import entry

__all__ = ["IncidentStep", "advance", "change_level", "facts_of", "on_triaged", "opening_entries"]


@dataclass
class IncidentStep:
    """The outcome of one event. `changed` is False for a replay that changes nothing."""

    incident: Incident
    changed: bool
    new_tasks: list[Task] = field(default_factory=list)
    entries: list[TimelineEntry] = field(default_factory=list)


def facts_of(alarm: Alarm, site: Site) -> Facts:
    """What matching sees of an alarm at a site. A level is taken from `attributes.level`."""
    level = alarm.attributes.get("level")
    return Facts(kind=alarm.kind, signal=alarm.signal, site_type=site.type, site_id=site.site_id,
                 grid=site.grid, level=level if level in LEVELS else None, at=alarm.occurred_at,
                 attributes=alarm.attributes)


def _received(triaged: Triaged, now: datetime) -> TimelineEntry:
    alarm = triaged.alarm
    detail = {"kind": alarm.kind, "signal": alarm.signal, "site_id": triaged.site.site_id,
              "occurred_at": alarm.occurred_at.isoformat()}
    for name in ("device_id", "description"):
        if getattr(alarm, name):
            detail[name] = getattr(alarm, name)
    if alarm.reporter and alarm.reporter.name:
        detail["reporter"] = alarm.reporter.name
    return entry(triaged.incident_id, "alarm_received", now, alarm_id=alarm.alarm_id,
                 detail=detail)


def _dispatched(task: Task, at: datetime) -> TimelineEntry:
    return entry(task.incident_id, "task_dispatched", at, task_id=task.task_id,
                 department=task.department, revision=1,
                 detail={"step": task.step, "action": task.action, "unit": task.unit,
                         "ack_due": task.ack_due.isoformat(),
                         "complete_due": task.complete_due.isoformat()})


def opening_entries(incident: Incident, site: Site, loaded: LoadedPlaybook, why: str,
                    tasks: list[Task], at: datetime) -> list[TimelineEntry]:
    """incident_opened, playbook_matched and the first tasks' task_dispatched. Their ids come
    from the incident, so sending them again (after a restart) records nothing twice."""
    iid, pb = incident.incident_id, loaded.playbook
    return [
        entry(iid, "incident_opened", at, detail={
            "site_id": incident.site_id, "site_name": site.name, "address": site.address,
            "level": incident.level, "kind": incident.kind}),
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
                     completed={t.step for t in tasks if t.status == "completed"})
    if not new:
        return IncidentStep(incident, changed=False)
    incident = incident.model_copy(update={
        "task_ids": [*incident.task_ids, *(t.task_id for t in new)]})
    return IncidentStep(incident, changed=True, new_tasks=new,
                        entries=[_dispatched(t, now) for t in new])


def on_triaged(current: Incident | None, triaged: Triaged, playbooks: PlaybookSet,
               now: datetime) -> IncidentStep:
    """Open the incident (match, plan, record) or attach the alarm to it."""
    alarm = triaged.alarm
    if current is not None:
        if alarm.alarm_id in current.alarm_ids:  # a replay: record nothing new
            return IncidentStep(current, changed=False, entries=[_received(triaged, now)])
        return IncidentStep(current.with_alarm(alarm.alarm_id, alarm.occurred_at), changed=True,
                            entries=[_received(triaged, now)])

    result = match(playbooks, facts_of(alarm, triaged.site))
    pb = result.winner.playbook
    incident = Incident(
        incident_id=triaged.incident_id, status="open", level=pb.level,
        site_id=triaged.site.site_id, kind=alarm.kind, hazard=triaged.hazard,
        playbook=PlaybookRef(id=pb.id, version=pb.version,
                             content_hash=result.winner.content_hash),
        alarm_ids=[alarm.alarm_id], task_ids=[], opened_at=now, last_alarm_at=alarm.occurred_at,
    )
    planned = advance(incident, result.winner, triaged.site, [], now)
    entries = [_received(triaged, now), *opening_entries(
        planned.incident, triaged.site, result.winner, result.why, planned.new_tasks, now)]
    return IncidentStep(planned.incident, changed=True, new_tasks=planned.new_tasks,
                        entries=entries)


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
