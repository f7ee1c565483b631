"""The duty officer's hand on an incident (pure): add a task (加派), re-assign a task a
department rejected or cannot do (转派), cancel a task that is not needed, blow the whistle
(吹哨) to call departments in, by hand or by a playbook's rule; and the lead's notice of a
rejection (退回).

Each returns an `IncidentStep` like the rest of `incidents`; the caller counts the revision.
Ids are derived from the incident's state, so the same request applied twice (a replay) finds
its task there and adds nothing.

    >>> step = whistle(incident, update, tasks, {"district_emergency": timedelta(minutes=30)}, now)
    >>> [(t.department, t.summons) for t in step.new_tasks]
    [('district_emergency', True)]
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from agents.logic.deadlines import NOTICE_WITHIN
from agents.logic.incidents import IncidentStep, advance, close_if_done
from agents.logic.timelines import entry
from playbooks import LoadedPlaybook, task_id_for
from schemas import (
    FINAL_STATUSES,
    LEVELS,
    Incident,
    IncidentUpdate,
    Playbook,
    Site,
    Task,
    TimelineEntry,
)

__all__ = ["DEFAULT_REPORT_WITHIN", "SUMMONS_COMPLETE_WITHIN", "add_task", "called_in",
           "cancel_task", "dispatched", "on_command", "reassign", "rejection_notice",
           "summons_rule_due", "whistle"]

DEFAULT_REPORT_WITHIN = timedelta(minutes=30)
"""The 报到 deadline for a department the departments file gives none."""

SUMMONS_COMPLETE_WITHIN = timedelta(hours=24)
"""A department called in is done (离场) within this of reporting."""


def on_command(incident: Incident, update: IncidentUpdate, loaded: LoadedPlaybook, site: Site,
               tasks: list[Task], report_within: Mapping[str, timedelta],
               now: datetime) -> IncidentStep:
    """The officer's `add_task`, `reassign`, `cancel_task` or `whistle` on an open incident;
    after a re-assignment or a cancellation the steps that waited may go, and the incident
    closes if nothing is left to do. `changed` False: nothing to do (closed, taken over or
    finished meanwhile, every department called in already)."""
    if incident.status == "closed":
        return IncidentStep(incident, changed=False)
    if update.action == "add_task":
        step = add_task(incident, update, tasks, now)
    elif update.action == "whistle":
        step = whistle(incident, update, tasks, report_within, now)
    else:
        step = (reassign if update.action == "reassign" else cancel_task)(
            incident, update, tasks, now)
        if step.changed:
            changed = {t.task_id: t for t in step.changed_tasks}
            after = [changed.get(t.task_id, t) for t in tasks] + step.new_tasks
            planned = advance(step.incident, loaded, site, after, now)
            if planned.changed:
                step.incident = planned.incident
                step.new_tasks += planned.new_tasks
                step.entries += planned.entries
            close_if_done(step, after + planned.new_tasks, now)
    if step.changed:
        step.incident = step.incident.model_copy(update={
            "revision": incident.revision + 1, "last_update_id": update.update_id})
    return step


def _new_task(incident: Incident, like: Task | None, *, task_id: str, step: str,
              department: str, action: str, ack_within: timedelta,
              complete_within: timedelta, now: datetime, **extra: object) -> Task:
    return Task(task_id=task_id, incident_id=incident.incident_id, department=department,
                step=step, action=action, status="dispatched", ack_due=now + ack_within,
                complete_due=now + complete_within, created_at=now, updated_at=now,
                site_id=incident.site_id, level=incident.level, drill=incident.drill,
                site_name=like.site_name if like else "", address=like.address if like else "",
                **extra)


def dispatched(task: Task, at: datetime, by: str | None, **detail: object) -> TimelineEntry:
    """`task_dispatched` for a task the officer, a rule or a rejection added."""
    return entry(task.incident_id, "task_dispatched", at, task_id=task.task_id,
                 department=task.department, by=by, revision=1,
                 detail={"step": task.step, "action": task.action,
                         "ack_due": task.ack_due.isoformat(),
                         "complete_due": task.complete_due.isoformat(),
                         **{k: v for k, v in detail.items() if v}})


def _with_tasks(step: IncidentStep, new: list[Task]) -> None:
    step.incident = step.incident.model_copy(update={
        "task_ids": [*step.incident.task_ids, *(t.task_id for t in new)]})
    step.new_tasks += new
    step.changed = True


def add_task(incident: Incident, update: IncidentUpdate, tasks: list[Task],
             now: datetime) -> IncidentStep:
    """加派: one more task for any department, with the officer's action and deadlines."""
    assert update.department is not None and update.task_action
    step = IncidentStep(incident, changed=False)
    n = 1 + sum(t.step.startswith("added-") for t in tasks)
    task = _new_task(incident, tasks[0] if tasks else None,
                     task_id=task_id_for(incident.incident_id, f"added-{n}"), step=f"added-{n}",
                     department=update.department, action=update.task_action,
                     ack_within=update.ack_within or timedelta(minutes=10),
                     complete_within=update.complete_within or timedelta(hours=2), now=now)
    _with_tasks(step, [task])
    step.entries.append(dispatched(task, now, update.by, added=True, note=update.note))
    return step


def reassign(incident: Incident, update: IncidentUpdate, tasks: list[Task],
             now: datetime) -> IncidentStep:
    """转派: a new task for another department takes the old one's step over (so the steps
    waiting for it wait for the new one). A rejected task stays rejected, marked taken over;
    an open one is cancelled. The lead's notice of the rejection is settled."""
    assert update.department is not None and update.task_id is not None
    step = IncidentStep(incident, changed=False)
    old = next((t for t in tasks if t.task_id == update.task_id), None)
    if old is None or old.replaced_by is not None or old.status in ("completed", "cancelled"):
        return step  # gone, taken over or finished meanwhile: the caller says so
    n = 1 + sum(t.step == old.step for t in tasks)
    new = _new_task(incident, old, task_id=f"{old.task_id}.r{n}", step=old.step,
                    department=update.department, action=update.task_action or old.action,
                    ack_within=update.ack_within or (old.ack_due - old.created_at),
                    complete_within=update.complete_within or (old.complete_due - old.created_at),
                    now=now, unit=None, verification=old.verification, replaces=old.task_id)
    taken = old.model_copy(update={"replaced_by": new.task_id, "updated_at": now,
                                   "revision": old.revision + 1})
    if old.status not in FINAL_STATUSES:
        taken = taken.model_copy(update={"status": "cancelled", "by": update.by,
                                         "note": f"已转派：{update.note}" if update.note
                                         else "已转派"})
    _with_tasks(step, [new])
    step.changed_tasks.append(taken)
    step.entries += [
        entry(incident.incident_id, "task_reassigned", now, task_id=old.task_id,
              department=old.department, by=update.by, revision=taken.revision,
              detail={"to": new.task_id, "department": new.department, "status": taken.status,
                      **({"note": update.note} if update.note else {})}),
        dispatched(new, now, update.by, replaces=old.task_id, note=update.note)]
    _settle_rejection(step, taken, tasks, now, update.by)
    return step


def cancel_task(incident: Incident, update: IncidentUpdate, tasks: list[Task],
                now: datetime) -> IncidentStep:
    """The step is not needed: the task is cancelled (a rejected one too), the steps waiting
    for it go on, the lead's notice of a rejection is settled."""
    step = IncidentStep(incident, changed=False)
    old = next((t for t in tasks if t.task_id == update.task_id), None)
    if old is None or old.replaced_by is not None or old.status in ("completed", "cancelled"):
        return step
    done = old.model_copy(update={"status": "cancelled", "updated_at": now, "by": update.by,
                                  "revision": old.revision + 1, "note": update.note})
    step.changed = True
    step.changed_tasks.append(done)
    step.entries.append(entry(incident.incident_id, "task_cancelled", now, task_id=old.task_id,
                              department=old.department, by=update.by, revision=done.revision,
                              detail={"status": "cancelled", "was": old.status,
                                      "note": update.note}))
    _settle_rejection(step, done, tasks, now, update.by)
    return step


def _settle_rejection(step: IncidentStep, task: Task, tasks: list[Task], now: datetime,
                      by: str) -> None:
    for notice in tasks:
        if (notice.notice_of == task.task_id and notice.notice_cause == "rejected"
                and notice.status not in FINAL_STATUSES):
            what = f"已转派（{task.replaced_by}）" if task.replaced_by else "已撤销"
            step.changed_tasks.append(notice.model_copy(update={
                "status": "completed", "updated_at": now, "revision": notice.revision + 1,
                "by": by, "note": what}))


def rejection_notice(incident: Incident, task: Task, lead: str, names: Mapping[str, str],
                     at: datetime) -> Task | None:
    """退回: the lead's notice that a department rejected its task, to re-assign or cancel
    it; None for a rejected notice (nobody is told of a notice's rejection but its sender)."""
    if task.notice_of is not None or task.department == lead:
        return None
    own = task.task_id.removeprefix(f"{incident.incident_id}.")
    who = names.get(task.department, task.department)
    return Task(task_id=task_id_for(incident.incident_id, f"{own}:rejected:{lead}"),
                incident_id=incident.incident_id, department=lead,
                step=f"{own}:rejected:{lead}",
                action=f"退回：{who}退回任务「{task.action}」（{task.note or '未说明'}），"
                       f"请转派或撤销。",
                status="dispatched", ack_due=at + NOTICE_WITHIN,
                complete_due=at + NOTICE_WITHIN * 6, created_at=at, updated_at=at,
                site_id=incident.site_id, level=incident.level, drill=incident.drill,
                site_name=task.site_name,
                address=task.address, notice_of=task.task_id, notice_cause="rejected")


def whistle(incident: Incident, update: IncidentUpdate, tasks: list[Task],
            report_within: Mapping[str, timedelta], now: datetime,
            rule: int | None = None) -> IncidentStep:
    """吹哨: a summons task (报到: acknowledge it, as a named person) for each department not
    called in already (one whose summons is still open is not called twice), due within
    `update.ack_within` or the department's `report_within`; one `whistle_blown` entry."""
    step = IncidentStep(incident, changed=False)
    open_calls = {t.department for t in tasks if t.summons and t.status not in FINAL_STATUSES}
    like = next((t for t in tasks if t.site_name), None)
    new = []
    for dept in dict.fromkeys(update.departments):
        if dept in open_calls:
            continue
        n = sum(t.summons and t.department == dept for t in tasks)
        name = f"whistle-{dept}" + (f"-{n + 1}" if n else "")
        within = update.ack_within or report_within.get(dept, DEFAULT_REPORT_WITHIN)
        new.append(_new_task(incident, like, task_id=task_id_for(incident.incident_id, name),
                             step=name, department=dept, action=f"吹哨报到：{update.note}",
                             ack_within=within, complete_within=within + SUMMONS_COMPLETE_WITHIN,
                             now=now, summons=True))
    if not new:
        return step
    _with_tasks(step, new)
    step.entries.append(entry(
        incident.incident_id, "whistle_blown", now, by=update.by, key=update.update_id,
        detail={"departments": [t.department for t in new], "reason": update.note,
                "report_by": {t.department: t.ack_due.isoformat() for t in new},
                **({"rule": rule} if rule is not None else {})}))
    step.entries += [dispatched(t, now, update.by, summons=True) for t in new]
    return step


def summons_rule_due(incident: Incident, playbook: Playbook, tasks: list[Task]) -> list[int]:
    """The playbook's whistle rules that hold now and call in a department not called yet."""
    if incident.status == "closed" or not playbook.whistle:
        return []
    called = {t.department for t in tasks if t.summons}
    missed = sum(len(t.overdue) for t in tasks if t.notice_of is None and not t.summons)
    due = []
    for i, rule in enumerate(playbook.whistle):
        when = rule.when
        holds = (incident.confirmed and LEVELS.index(incident.level)
                 <= LEVELS.index(when.level_at_least)) if when.level_at_least else (
            when.overdue is not None and missed >= when.overdue)
        if holds and any(d not in called for d in rule.departments):
            due.append(i)
    return due


def called_in(step: IncidentStep, playbook: Playbook, tasks: list[Task],
              report_within: Mapping[str, timedelta], now: datetime) -> None:
    """Add to `step` the summons of the playbook's whistle rules that now hold (by Whistle,
    the rule named on the entry), given the incident's tasks before the step."""
    held = [*tasks, *step.new_tasks]
    for i in summons_rule_due(step.incident, playbook, held):
        rule = playbook.whistle[i]
        update = IncidentUpdate(update_id=f"{step.incident.incident_id}:whistle:{i}",
                                incident_id=step.incident.incident_id, action="whistle",
                                departments=[d for d in rule.departments
                                             if d not in {t.department for t in held
                                                          if t.summons}],
                                ack_within=rule.within, by="whistle", note=rule.reason, at=now)
        called = whistle(step.incident, update, held, report_within, now, rule=i)
        if called.changed:
            step.incident, step.changed = called.incident, True
            step.new_tasks += called.new_tasks
            step.entries += called.entries
            held += called.new_tasks
