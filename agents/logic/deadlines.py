"""Deadlines and escalation (pure): when a task is overdue, what the playbook says to do about
it, and how a department's answer settles the notices it caused.

A task has two deadlines. `ack_due` holds while it is `dispatched`; `complete_due` while it is
not finished. Each deadline, once passed, marks the task overdue (`task_overdue`), and each of
the step's escalation rules for it fires at the deadline and again every `repeat`, `times`
times in all, while the task is still pending: notify departments (a 督办 notice task for
each) and raise the incident's level. Every firing has a deterministic id, recorded on the
task when applied, so a timer that fires twice or a restarted worker escalates once.

    >>> [e.escalation_id for e in due_escalations(task, rules, now)]
    ['inc-1.cordon:ack:overdue', 'inc-1.cordon:ack:0:1']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from agents.logic.timelines import entry
from playbooks import task_id_for
from schemas import (
    FINAL_STATUSES,
    LEVELS,
    Escalation,
    Incident,
    IncidentUpdate,
    Playbook,
    Task,
    TimelineEntry,
)
from schemas.escalation import Overdue
from schemas.playbook import EscalationRule

__all__ = ["Escalated", "NOTICE_WITHIN", "OpenTaskIndex", "cleared_notices", "due_escalations",
           "escalate", "next_due", "pending", "rules_for", "summons_rules"]

NOTICE_WITHIN = timedelta(minutes=5)
"""A notice is to be acknowledged within this; notices are not escalated themselves."""

_WHICH: dict[str, Overdue] = {"ack_overdue": "ack", "complete_overdue": "complete"}
_CAUSE: dict[str, str] = {v: k for k, v in _WHICH.items()}
_ANSWERED = {"acknowledged": "已确认接收", "in_progress": "已开始处置", "completed": "已完成",
             "rejected": "已退回任务"}


class OpenTaskIndex:
    """Open tasks (not completed or rejected) per department, kept as tasks are written, so
    that counting them is free when `/metrics` is scraped. Counting by reading the whole tasks
    table took 78% of the samples of a worker with nothing else to do, at 30,000 tasks in
    RocksDB (`whistle bench --memory 100000` scraped once a second while it waited for the
    worker to settle).

        >>> index = OpenTaskIndex()
        >>> index.note("t1", "police", "dispatched"); index.note("t1", "police", "completed")
        >>> index.counts(["police"])
        {'police': 0}
    """

    def __init__(self) -> None:
        self._department: dict[str, str] = {}  # open task -> its department
        self._open: Counter = Counter()

    def note(self, task_id: str, department: str, status: str) -> None:
        was = self._department.pop(task_id, None)
        if was is not None:
            self._open[was] -= 1
        if status not in FINAL_STATUSES:
            self._department[task_id] = department
            self._open[department] += 1

    def rebuild(self, tasks: Iterable[Mapping]) -> None:
        """From the tasks table's values (after a rebalance changed what this worker holds)."""
        self._department.clear()
        self._open.clear()
        for task in tasks:
            if task:
                self.note(task["task_id"], task["department"], task["status"])

    def counts(self, departments: Iterable[str]) -> dict[str, int]:
        """Every department named, and any other with open tasks."""
        counts = dict.fromkeys(departments, 0)
        counts.update((d, n) for d, n in self._open.items() if n)
        return counts


def summons_rules(lead: str) -> list[EscalationRule]:
    """A department called in by the whistle that does not report for duty (报到) in time:
    the lead is told at once and every 10 minutes after, three times in all."""
    return [EscalationRule(on_overdue="ack", notify=[lead], repeat=timedelta(minutes=10),
                           times=3)]


def rules_for(playbook: Playbook | None, step_id: str) -> list[EscalationRule]:
    """The step's own rules, else the playbook's; none for a notice or an unknown step."""
    if playbook is None:
        return []
    try:
        step = playbook.step(step_id)
    except StopIteration:
        return []
    return playbook.escalate if step.escalate is None else step.escalate


def pending(task: Task, which: str) -> bool:
    """Whether the deadline `which` (ack, complete) still binds the task."""
    if which == "ack":
        return task.status == "dispatched"
    return task.status not in FINAL_STATUSES


class _Firing(NamedTuple):
    escalation_id: str
    which: str
    rule: int | None
    n: int
    due: datetime


def _firings(task: Task, rules: list[EscalationRule]) -> list[_Firing]:
    """Every escalation the task's deadlines imply and that is still open: not applied yet,
    and the deadline still binds (plain tuples: this runs on every task publish)."""
    if task.notice_of is not None:
        return []
    found = []
    for which, due in (("ack", task.ack_due), ("complete", task.complete_due)):
        if not pending(task, which):
            continue
        found.append(_Firing(f"{task.task_id}:{which}:overdue", which, None, 1, due))
        for i, rule in enumerate(rules):
            if rule.on_overdue != which:
                continue
            for n in range(1, rule.times + 1):
                found.append(_Firing(Escalation.overdue_id(task.task_id, which, i, n), which, i,
                                     n, due + (rule.repeat or timedelta(0)) * (n - 1)))
    return [f for f in found if f.escalation_id not in task.escalations]


def next_due(task: Task, rules: list[EscalationRule]) -> datetime | None:
    """When the task next needs the timer, or None if it never will again."""
    if not task.escalations and task.notice_of is None:
        # none applied yet: a rule fires at its deadline or later (durations are not
        # negative), so the earliest is a binding deadline's own (every publish of a new task)
        return min((due for which, due in (("ack", task.ack_due), ("complete", task.complete_due))
                    if pending(task, which)), default=None)
    return min((f.due for f in _firings(task, rules)), default=None)


def due_escalations(task: Task, rules: list[EscalationRule], now: datetime) -> list[Escalation]:
    """The escalations due by `now` and not applied yet, oldest first; `at` is `now`."""
    due = sorted((f for f in _firings(task, rules) if f.due <= now),
                 key=lambda f: (f.due, f.rule is not None, f.rule or 0, f.n))
    return [Escalation(escalation_id=f.escalation_id, incident_id=task.incident_id,
                       task_id=task.task_id, cause=_CAUSE[f.which], rule=f.rule, n=f.n,
                       due=f.due, at=now) for f in due]


@dataclass
class Escalated:
    """What applying one escalation changes: the task, the incident (when notices are new),
    the notices (new, or a new revision on a repeat), entries and level updates. `changed`
    is False when it was applied before (the entries are the same each time, so a caller may
    send them again) or no longer holds (the task was answered meanwhile)."""

    changed: bool
    task: Task | None = None
    incident: Incident | None = None
    notices: list[Task] = field(default_factory=list)
    entries: list[TimelineEntry] = field(default_factory=list)
    updates: list[IncidentUpdate] = field(default_factory=list)


def escalate(incident: Incident, task: Task | None, esc: Escalation,
             rules: list[EscalationRule], names: dict[str, str],
             held: dict[str, Task]) -> Escalated:
    """Apply one escalation: mark the task overdue, or notify and raise as rule `esc.rule`
    says, or (a delivery that failed) record it and notify the safety office, unless the
    department has answered the task since (it knows the task). Each notified
    department gets one notice per task and cause, sent again (a new revision) on a repeat.
    `names` maps department ids to names; `held` is the incident's tasks by id."""
    if task is not None and esc.escalation_id in task.escalations:
        return Escalated(changed=False, task=task, entries=_entries(incident, task, esc, rules))
    if any(esc.escalation_id in t.escalations for t in held.values() if t.notice_of is not None
           or t.notice_cause is not None):  # a failed delivery, noticed before
        return Escalated(changed=False, entries=_entries(incident, task, esc, rules))
    if esc.cause != "delivery_failed" and (task is None or not pending(task, _WHICH[esc.cause])):
        return Escalated(changed=False)
    out = Escalated(changed=True, entries=_entries(incident, task, esc, rules))
    # a failed delivery leaves the task as it is: a new revision would only be sent again
    if task is not None and esc.cause != "delivery_failed":
        overdue = list(task.overdue)
        if esc.cause in _WHICH and _WHICH[esc.cause] not in overdue:
            overdue.append(_WHICH[esc.cause])
        out.task = task.model_copy(update={
            "overdue": overdue, "escalations": [*task.escalations, esc.escalation_id],
            "updated_at": esc.at, "revision": task.revision + 1})
    notify = [] if _unheeded(task, esc) else _notified(esc, rules)
    for dept in notify:
        notice = _notice(incident, task, esc, dept, names)
        before = held.get(notice.task_id)
        if before is None:
            out.notices.append(notice)
            out.entries.append(_dispatched(notice, esc))
        else:  # a repeat: the same notice again, due anew
            out.notices.append(before.model_copy(update={
                "action": notice.action, "ack_due": notice.ack_due, "updated_at": esc.at,
                "revision": before.revision + 1,
                "status": "dispatched" if before.status in FINAL_STATUSES else before.status,
                "escalations": [*before.escalations, esc.escalation_id]}))
    fresh = [t.task_id for t in out.notices if t.task_id not in incident.task_ids]
    if fresh:
        out.incident = incident.model_copy(update={
            "task_ids": [*incident.task_ids, *fresh], "revision": incident.revision + 1})
    rule = _rule(esc, rules)
    raised = _raised(incident.level) if rule is not None and rule.raise_level else None
    if raised is not None:
        out.updates.append(IncidentUpdate(
            update_id=f"{esc.escalation_id}:level", incident_id=incident.incident_id,
            action="raise_level", level=raised, by="whistle",
            note=f"escalation {esc.escalation_id}", at=esc.at))
    return out


def _dispatched(notice: Task, esc: Escalation) -> TimelineEntry:
    return entry(notice.incident_id, "task_dispatched", esc.at, task_id=notice.task_id,
                 department=notice.department, revision=1,
                 detail={"step": notice.step, "action": notice.action,
                         "notice_of": notice.notice_of, "ack_due": notice.ack_due.isoformat(),
                         "complete_due": notice.complete_due.isoformat()})


def _unheeded(task: Task | None, esc: Escalation) -> bool:
    """Whether an escalation notifies nobody: a notice that could not be delivered (recorded,
    never noticed again: no loops), or a push that failed after the department answered the
    task (it knows the task: its answer settles such a notice, so none is raised again)."""
    if task is None:
        return False
    return task.notice_of is not None or (esc.cause == "delivery_failed"
                                          and task.status != "dispatched")


def _rule(esc: Escalation, rules: list[EscalationRule]) -> EscalationRule | None:
    return rules[esc.rule] if esc.rule is not None and esc.rule < len(rules) else None


def _notified(esc: Escalation, rules: list[EscalationRule]) -> list[str]:
    if esc.cause == "delivery_failed":
        return ["safety_office"]
    rule = _rule(esc, rules)
    return list(rule.notify) if rule else []


def _raised(level: str) -> str | None:
    i = LEVELS.index(level)
    return LEVELS[i - 1] if i > 0 else None


def _entries(incident: Incident, task: Task | None, esc: Escalation,
             rules: list[EscalationRule]) -> list[TimelineEntry]:
    iid, tid, key = incident.incident_id, esc.task_id, esc.escalation_id
    dept = task.department if task else None
    if esc.cause == "delivery_failed":
        failed = entry(iid, "delivery_failed", esc.at, task_id=tid, department=dept,
                       by="whistle", key=key, detail={"escalation_id": key, **esc.detail})
        if _unheeded(task, esc):
            return [failed]
        return [failed, entry(iid, "escalated", esc.at, task_id=tid, department=dept,
                              by="whistle", key=key,
                              detail={"escalation_id": key, "cause": esc.cause,
                                      "notify": ["safety_office"]})]
    rule = _rule(esc, rules)
    if rule is None:  # the mark: the deadline passed
        return [entry(iid, "task_overdue", esc.at, task_id=tid, department=dept, by="whistle",
                      key=key, detail={"deadline": _WHICH[esc.cause],
                                       "due": esc.due.isoformat() if esc.due else None})]
    return [entry(iid, "escalated", esc.at, task_id=tid, department=dept, by="whistle", key=key,
                  detail={"escalation_id": key, "cause": esc.cause, "rule": esc.rule,
                          "n": esc.n, "times": rule.times, "notify": list(rule.notify),
                          "raise_level": rule.raise_level})]


def _notice(incident: Incident, task: Task | None, esc: Escalation, dept: str,
            names: dict[str, str]) -> Task:
    """A 督办 task for `dept` about the task that was not answered (or not reached)."""
    subject = task.step if task else "feedback"
    step = f"{subject}:{esc.cause}:{dept}"
    again = f"（第{esc.n}次）" if esc.n > 1 else ""
    if task is None:
        action = (f"督办{again}：事件 {incident.incident_id} 的处置反馈未能送达报警人"
                  f"（{esc.detail.get('error', '投递失败')}），请电话回访。")
    else:
        who = names.get(task.department, task.department)
        what = {"ack_overdue": "未在期限内确认接收", "complete_overdue": "未在期限内完成",
                "delivery_failed": "的系统未收到"}[esc.cause]
        action = f"督办{again}：{who}{what}任务「{task.action}」，请立即联系督促。"
    return Task(task_id=task_id_for(incident.incident_id, step), incident_id=incident.incident_id,
                department=dept, step=step, action=action, status="dispatched",
                ack_due=esc.at + NOTICE_WITHIN,
                complete_due=max(esc.at + NOTICE_WITHIN, task.complete_due if task else esc.at),
                created_at=esc.at, updated_at=esc.at, site_id=incident.site_id,
                level=incident.level, drill=incident.drill,
                site_name=task.site_name if task else "",
                address=task.address if task else "", escalations=[esc.escalation_id],
                notice_of=task.task_id if task else None, notice_cause=esc.cause)


def cleared_notices(task: Task, tasks: list[Task], at: datetime, names: dict[str, str]
                    ) -> list[Task]:
    """The open notices about `task` that its new status settles, completed by Whistle."""
    done = []
    for notice in tasks:
        if (notice.notice_of != task.task_id or notice.status in FINAL_STATUSES
                or notice.notice_cause == "rejected"):  # settled by the lead's hand
            continue
        settled = (task.status in FINAL_STATUSES if notice.notice_cause == "complete_overdue"
                   else task.status != "dispatched")
        if settled:
            who = names.get(task.department, task.department)
            done.append(notice.model_copy(update={
                "status": "completed", "updated_at": at, "revision": notice.revision + 1,
                "by": "whistle", "note": f"{who}{_ANSWERED[task.status]}"}))
    return done
