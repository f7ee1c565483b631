"""The shift handover (交接班), pure: what the outgoing duty officer hands the next one. What
opened and what closed in the shift, what was escalated (a level raised, a deadline missed, a
督办, a whistle blown), what is still open at its end with each department's open tasks, and
which tasks are overdue now. Departments are named by the departments file, times are Beijing
time when rendered (`handover_report`).

    >>> shift = parse_shift("2026-12-06T08:00:00+08:00", None, now)
    >>> h = handover(shift, incidents, tasks, entries, {"police": "派出所"})
    >>> h.counts()["opened"], [r.incident_id for r in h.still_open]
    (1, ['inc-20261206-1a2b3c4d5e'])

The incidents, tasks and timeline entries are partitioned across workers: each answers
`part(...)`, only what the handover can show (JSON), and the worker asked merges the parts and
calls `handover`. Inputs may be the models or their JSON.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from agents.report.review import format_duration
from agents.report.wording import (
    CAUSE_NAMES,
    CLOSE_REASONS,
    DEADLINE_NAMES,
    KIND_NAMES,
    LEVEL_NAMES,
    STATUS_NAMES,
    stamp,
)
from schemas import FINAL_STATUSES, LEVELS, Incident, Task, TimelineEntry
from schemas.common import parse_timestamp

__all__ = ["ESCALATION_NAMES", "ESCALATION_TYPES", "INCIDENT_STATUS_NAMES", "BadShift",
           "EscalationRow", "Handover", "IncidentRow", "Shift", "TaskRow", "handover",
           "overdue_marks", "parse_shift", "part"]

ESCALATION_TYPES = ("escalated", "level_changed", "task_overdue", "whistle_blown")
"""The timeline entries that say an incident got worse or someone was called in."""

INCIDENT_STATUS_NAMES = {"open": "处置中", "contained": "已控制", "closed": "已结案"}

M = TypeVar("M", bound=BaseModel)


class BadShift(ValueError):
    """A `since` or `until` that names no instant: `param` is which, `msg` why."""

    def __init__(self, param: str, msg: str) -> None:
        super().__init__(f"{param}: {msg}")
        self.param, self.msg = param, msg


@dataclass(frozen=True)
class Shift:
    """The shift handed over: from `since` to `until` (both included), read at `now`."""

    since: datetime
    until: datetime
    now: datetime

    def covers(self, at: datetime | None) -> bool:
        return at is not None and self.since <= at <= self.until

    def open_at_end(self, incident: Incident) -> bool:
        """Open or contained when the shift ended (an incident closed since was still open)."""
        return incident.opened_at <= self.until and (incident.closed_at is None
                                                     or incident.closed_at > self.until)


_PLUS_LOST = re.compile(r" (\d\d:?\d\d)$")


def _instant(param: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    # an unencoded `+08:00` in a URL arrives as ` 08:00`: put the sign back
    text = _PLUS_LOST.sub(r"+\1", text.strip())
    try:
        at = parse_timestamp(text)
    except ValueError:
        raise BadShift(param, "an RFC 3339 time with its offset, e.g. "
                              "2026-12-06T08:00:00+08:00") from None
    if not 2000 <= at.year <= 9998:  # a clock's fault; and Beijing time must stay in range
        raise BadShift(param, "a time from the year 2000 to 9998")
    return at


def parse_shift(since: str | None, until: str | None, now: datetime) -> Shift:
    """The shift `since` (required) to `until` (default: now); BadShift names what is wrong.

    >>> parse_shift(None, None, now)
    Traceback (most recent call last):
    BadShift: since: required: when the shift began, e.g. 2026-12-06T08:00:00+08:00
    """
    if since is None or not since.strip():
        raise BadShift("since", "required: when the shift began, e.g. 2026-12-06T08:00:00+08:00")
    start = _instant("since", since)
    end = _instant("until", until) or now
    assert start is not None
    if end < start:
        raise BadShift("until", "is before since") if until else BadShift("since", "is after now")
    return Shift(start, end, now)


def _model(value: Any, model: type[M]) -> M:
    return value if isinstance(value, model) else model.model_validate(value)


def overdue_marks(task: Task, now: datetime) -> tuple[str, ...]:
    """The deadlines an open task has missed by `now` (`ack` while still dispatched,
    `complete` while not finished) or was marked for; none once it is final or re-assigned."""
    if task.status in FINAL_STATUSES or task.replaced_by is not None:
        return ()
    # a mark stands while it is still true: a late acknowledgement answers the `ack` one
    missed = {d for d in task.overdue if d == "complete" or task.status == "dispatched"}
    if task.status == "dispatched" and task.ack_due < now:
        missed.add("ack")
    if task.complete_due < now:
        missed.add("complete")
    return tuple(d for d in ("ack", "complete") if d in missed)


@dataclass(frozen=True)
class TaskRow:
    """One open task as the handover shows it."""

    task_id: str
    incident_id: str
    department: str
    department_name: str
    status: str
    ack_due: datetime
    complete_due: datetime
    overdue: tuple[str, ...] = ()
    notice: bool = False

    @property
    def text(self) -> str:
        """"派出所：待接收（超时未确认接收）"."""
        late = "、".join(f"超时未{DEADLINE_NAMES[d]}" for d in self.overdue)
        return (f"{self.department_name}{'（督办）' if self.notice else ''}："
                f"{STATUS_NAMES.get(self.status, self.status)}{f'（{late}）' if late else ''}")

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "incident_id": self.incident_id,
                "department": self.department, "department_name": self.department_name,
                "status": self.status, "ack_due": self.ack_due.isoformat(),
                "complete_due": self.complete_due.isoformat(), "overdue": list(self.overdue),
                "notice": self.notice}


@dataclass(frozen=True)
class IncidentRow:
    """One incident: where, what, how grave, since when; its open tasks (still open)."""

    incident_id: str
    site_id: str
    site_name: str
    kind: str
    level: str
    status: str
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    age: timedelta
    tasks: tuple[TaskRow, ...] = ()

    @property
    def place(self) -> str:
        return self.site_name or self.site_id

    @property
    def kind_text(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)

    @property
    def level_text(self) -> str:
        return f"{self.level} 级（{LEVEL_NAMES[self.level]}）" if self.level in LEVEL_NAMES \
            else self.level

    @property
    def status_text(self) -> str:
        """Its status now: "已结案 2026-12-06 21:00:00" for one closed after the shift."""
        text = INCIDENT_STATUS_NAMES.get(self.status, self.status)
        return f"{text} {stamp(self.closed_at)}" if self.closed_at else text

    @property
    def reason_text(self) -> str:
        return CLOSE_REASONS.get(self.close_reason or "", self.close_reason or "—")

    def to_json(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "site_id": self.site_id,
                "site_name": self.site_name, "kind": self.kind, "level": self.level,
                "status": self.status, "opened_at": self.opened_at.isoformat(),
                "closed_at": self.closed_at.isoformat() if self.closed_at else None,
                "close_reason": self.close_reason, "age_seconds": int(self.age.total_seconds()),
                "age": format_duration(self.age), "tasks": [t.to_json() for t in self.tasks]}


@dataclass(frozen=True)
class EscalationRow:
    """One escalation in the shift, said in a sentence (`text`)."""

    incident_id: str
    place: str
    at: datetime
    type: str
    department: str | None
    by: str | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "place": self.place, "at": self.at.isoformat(),
                "type": self.type, "department": self.department, "by": self.by,
                "text": self.text}


ESCALATION_NAMES = {"escalated": "督办升级", "level_changed": "调整级别", "task_overdue": "超时",
                    "whistle_blown": "吹哨报到"}
"""Each escalation entry type in Chinese."""


def _said(e: TimelineEntry, names: Mapping[str, str]) -> str:
    """What an escalation entry says: level from→to, which department is late, who was
    called in."""
    d: dict[str, Any] = e.detail or {}
    name = lambda x: names.get(str(x), str(x)) if x else ""  # noqa: E731
    called = "、".join(name(x) for x in d.get("notify") or d.get("departments") or [])
    if e.type == "level_changed":
        text = f"级别 {d.get('from', '?')} → {d.get('to', '?')}"
        return text + (f"：{d['note']}" if d.get("note") else "")
    if e.type == "task_overdue":
        deadline = str(d.get("deadline", ""))
        try:
            due = stamp(parse_timestamp(d.get("due")))
        except ValueError:  # no due recorded
            due = "—"
        return f"{name(e.department)} 未在 {due} 前{DEADLINE_NAMES.get(deadline, deadline)}"
    if e.type == "whistle_blown":
        return "吹哨，召集 " + (called or "—") + (f"：{d['reason']}" if d.get("reason") else "")
    cause = str(d.get("cause", ""))
    text = f"{name(e.department)} {CAUSE_NAMES.get(cause, cause)}".strip()
    text += f"，通知 {called}" if called else ""
    return text + ("，提升事件级别" if d.get("raise_level") else "")


@dataclass
class Handover:
    """Everything the handover shows, each section in the order it is read."""

    shift: Shift
    opened: list[IncidentRow] = field(default_factory=list)
    closed: list[IncidentRow] = field(default_factory=list)
    escalated: list[EscalationRow] = field(default_factory=list)
    still_open: list[IncidentRow] = field(default_factory=list)
    overdue: list[TaskRow] = field(default_factory=list)

    def overdue_by_department(self) -> list[tuple[str, str, int]]:
        """(department, name, overdue tasks), most first."""
        counted = Counter((t.department, t.department_name) for t in self.overdue)
        return [(d, n, c) for (d, n), c in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))]

    def counts(self) -> dict[str, int]:
        return {"opened": len(self.opened), "closed": len(self.closed),
                "escalated": len({r.incident_id for r in self.escalated}),
                "escalations": len(self.escalated), "still_open": len(self.still_open),
                "overdue": len(self.overdue)}

    def to_json(self) -> dict[str, Any]:
        s = self.shift
        return {"since": s.since.isoformat(), "until": s.until.isoformat(),
                "now": s.now.isoformat(), "counts": self.counts(),
                "opened": [r.to_json() for r in self.opened],
                "closed": [r.to_json() for r in self.closed],
                "escalated": [r.to_json() for r in self.escalated],
                "still_open": [r.to_json() for r in self.still_open],
                "overdue": [t.to_json() for t in self.overdue],
                "overdue_by_department": [{"department": d, "name": n, "count": c}
                                          for d, n, c in self.overdue_by_department()]}


def part(shift: Shift, incidents: Iterable[Any], tasks: Iterable[Any],
         entries: Iterable[Any]) -> dict[str, list[dict]]:
    """What one worker's partitions give the handover, as JSON: the open tasks, the
    escalation entries of the shift, and the incidents any section may show."""
    found = [_model(t, Task) for t in tasks]
    open_tasks = [t for t in found if t.status not in FINAL_STATUSES and t.replaced_by is None]
    raised = [e for e in (_model(e, TimelineEntry) for e in entries
                          if _type(e) in ESCALATION_TYPES) if shift.covers(e.at)]
    wanted = {t.incident_id for t in open_tasks if overdue_marks(t, shift.now)}
    wanted |= {e.incident_id for e in raised}
    kept = [i for i in (_model(i, Incident) for i in incidents)
            if i.incident_id in wanted or shift.covers(i.opened_at)
            or shift.covers(i.closed_at) or shift.open_at_end(i)]
    return {"incidents": [i.model_dump(mode="json") for i in kept],
            "tasks": [t.model_dump(mode="json") for t in open_tasks],
            "entries": [e.model_dump(mode="json", exclude_none=True) for e in raised]}


def _type(entry: Any) -> str | None:
    return entry.type if isinstance(entry, TimelineEntry) else entry.get("type")


def handover(shift: Shift, incidents: Iterable[Any], tasks: Iterable[Any], entries: Iterable[Any],
             names: Mapping[str, str], site_names: Mapping[str, str] | None = None) -> Handover:
    """The handover of `shift` from every incident, task and timeline entry given (more than
    it needs is fine). `names`: department id -> name; `site_names`: site id -> name (else a
    task's copy of it)."""
    incs = {i.incident_id: i for i in (_model(i, Incident) for i in incidents)}
    open_tasks: dict[str, list[TaskRow]] = {}
    sites = dict(site_names or {})
    rows: list[TaskRow] = []
    for t in sorted((_model(t, Task) for t in tasks), key=lambda t: (t.created_at, t.task_id)):
        if t.site_name:
            sites.setdefault(t.site_id, t.site_name)
        if t.status in FINAL_STATUSES or t.replaced_by is not None:
            continue
        shown = TaskRow(t.task_id, t.incident_id, t.department,
                        names.get(t.department, t.department), t.status, t.ack_due,
                        t.complete_due, overdue_marks(t, shift.now), t.notice_of is not None)
        open_tasks.setdefault(t.incident_id, []).append(shown)
        rows.append(shown)

    def row(i: Incident) -> IncidentRow:
        end = min(i.closed_at or shift.until, shift.until)
        return IncidentRow(i.incident_id, i.site_id, sites.get(i.site_id, ""), i.kind, i.level,
                           i.status, i.opened_at, i.closed_at, i.close_reason,
                           max(end - i.opened_at, timedelta()),
                           tuple(open_tasks.get(i.incident_id, ())))

    h = Handover(shift)
    ordered = sorted(incs.values(), key=lambda i: (i.opened_at, i.incident_id))
    h.opened = [row(i) for i in ordered if shift.covers(i.opened_at)]
    h.closed = sorted((row(i) for i in ordered if shift.covers(i.closed_at)),
                      key=lambda r: (r.closed_at, r.incident_id))
    h.still_open = sorted((row(i) for i in ordered if shift.open_at_end(i)),
                          key=lambda r: (LEVELS.index(r.level) if r.level in LEVELS else 9,
                                         r.opened_at, r.incident_id))
    for e in sorted((_model(e, TimelineEntry) for e in entries), key=lambda e: e.at):
        if e.type in ESCALATION_TYPES and shift.covers(e.at):
            inc = incs.get(e.incident_id)
            place = (sites.get(inc.site_id) or inc.site_id) if inc else ""
            h.escalated.append(EscalationRow(e.incident_id, place, e.at, e.type, e.department,
                                             e.by, _said(e, names)))
    h.overdue = sorted((r for r in rows if r.overdue),
                       key=lambda r: (r.department, r.ack_due if "ack" in r.overdue
                                      else r.complete_due, r.task_id))
    return h
