"""What an incident does with a triaged alarm (pure): open it and plan the tasks, or attach.

    >>> step = on_triaged(None, triaged, playbooks, now)
    >>> step.incident.status, [t.department for t in step.new_tasks]
    ('open', ['fire_brigade', 'safety_office', ...])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from playbooks import Facts, PlaybookSet, match, plan_tasks
from schemas import Incident, PlaybookRef, Task, TimelineEntry, Triaged

from .timelines import entry

__all__ = ["IncidentStep", "on_triaged"]


@dataclass
class IncidentStep:
    """The outcome of one triaged alarm. `changed` is False for a replay that changes nothing."""

    incident: Incident
    changed: bool
    new_tasks: list[Task] = field(default_factory=list)
    entries: list[TimelineEntry] = field(default_factory=list)


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


def on_triaged(current: Incident | None, triaged: Triaged, playbooks: PlaybookSet,
               now: datetime) -> IncidentStep:
    """Open the incident (match, plan, record) or attach the alarm to it."""
    alarm = triaged.alarm
    if current is not None:
        if alarm.alarm_id in current.alarm_ids:  # a replay: record nothing new
            return IncidentStep(current, changed=False, entries=[_received(triaged, now)])
        return IncidentStep(current.with_alarm(alarm.alarm_id, alarm.occurred_at), changed=True,
                            entries=[_received(triaged, now)])

    result = match(playbooks, Facts(kind=alarm.kind, signal=alarm.signal,
                                    site_type=triaged.site.type))
    pb = result.winner.playbook
    incident = Incident(
        incident_id=triaged.incident_id, status="open", level=pb.level,
        site_id=triaged.site.site_id, kind=alarm.kind, hazard=triaged.hazard,
        playbook=PlaybookRef(id=pb.id, version=pb.version),
        alarm_ids=[alarm.alarm_id], task_ids=[], opened_at=now, last_alarm_at=alarm.occurred_at,
    )
    tasks = plan_tasks(incident, pb, triaged.site, now)
    incident = incident.model_copy(update={"task_ids": [t.task_id for t in tasks]})
    iid = incident.incident_id
    entries = [
        _received(triaged, now),
        entry(iid, "incident_opened", now, detail={
            "site_id": incident.site_id, "site_name": triaged.site.name,
            "address": triaged.site.address, "level": incident.level, "kind": incident.kind}),
        entry(iid, "playbook_matched", now, detail={
            "playbook_id": pb.id, "version": pb.version, "title": pb.title,
            "content_hash": result.winner.content_hash, "why": result.why}),
        *(entry(iid, "task_dispatched", now, task_id=t.task_id, department=t.department,
                revision=t.revision,
                detail={"step": t.step, "action": t.action, "ack_due": t.ack_due.isoformat(),
                        "complete_due": t.complete_due.isoformat()})
          for t in tasks),
    ]
    return IncidentStep(incident, changed=True, new_tasks=tasks, entries=entries)
