"""The after-action review of one incident (事后倒查), pure: who was told when, who answered how
fast, what was late, what the plan said. The render module turns it into JSON, CSV, Markdown
and a printable HTML page.

    >>> r = review(timeline, {"police": "派出所"})
    >>> [lane.name for lane in r.lanes], format_duration(r.durations.alarm_to_dispatch)
    (['派出所'], '2 s')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from schemas import Incident, Timeline, TimelineEntry
from schemas.common import parse_timestamp

__all__ = ["ENTRY_NAMES", "LOCAL", "Bar", "Durations", "Lane", "LevelMark", "Mark",
           "PlaybookInfo", "Review", "Stretch", "TaskTimes", "format_duration", "is_notice",
           "review"]

LOCAL = ZoneInfo("Asia/Shanghai")
"""Every local time a review shows is Beijing time, whatever offset an entry was written in."""

ENTRY_NAMES: dict[str, str] = {
    "alarm_received": "收到报警", "incident_opened": "事件立案", "playbook_matched": "匹配预案",
    "task_dispatched": "派发任务", "task_acknowledged": "确认接收", "task_started": "开始处置",
    "task_completed": "处置完成", "task_rejected": "退回任务", "task_progress": "续报",
    "task_cancelled": "撤销任务", "task_overdue": "超时", "incident_contained": "险情控制",
    "escalated": "督办升级", "level_changed": "调整级别", "incident_confirmed": "确认火情",
    "incident_merged": "合并事件", "incident_reopened": "重新打开", "incident_closed": "事件结案",
    "delivery_failed": "推送失败", "reporter_feedback": "反馈报警人",
    "task_reassigned": "转派任务", "whistle_blown": "吹哨", "alarm_silenced": "检修屏蔽",
}
"""Each timeline entry type in Chinese, as the CSV, Markdown and HTML forms name it."""

_MARKED = ("escalated", "delivery_failed")


@dataclass(frozen=True)
class Stretch:
    """A time a task was overdue: from its missed deadline (`ack` or `complete`) until it was
    answered (ack) or finished (complete); `open` when it still was at the window's end."""

    deadline: str
    start: datetime
    end: datetime
    open: bool = False


@dataclass(frozen=True)
class Mark:
    """An escalation (`escalated`) or a failed push (`delivery_failed`) at one instant."""

    at: datetime
    type: str
    task_id: str | None
    department: str | None
    detail: dict[str, Any]


@dataclass
class Bar:
    """One task on its department's lane: when it was dispatched, acknowledged, started and
    finished, when it was overdue, and how it was escalated. `notice` marks a 督办 notice."""

    task_id: str
    department: str
    action: str = ""
    step: str | None = None
    notice: bool = False
    notice_of: str | None = None
    dispatched_at: datetime | None = None
    acknowledged_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rejected_at: datetime | None = None
    cancelled_at: datetime | None = None
    ack_due: datetime | None = None
    complete_due: datetime | None = None
    by: str | None = None
    overdue: list[Stretch] = field(default_factory=list)
    escalations: list[Mark] = field(default_factory=list)

    @property
    def finished_at(self) -> datetime | None:
        return self.completed_at or self.rejected_at or self.cancelled_at

    @property
    def answered_at(self) -> datetime | None:
        """The first answer of any kind: it ends the wait for an acknowledgement."""
        return min((t for t in (self.acknowledged_at, self.started_at, self.rejected_at,
                                self.completed_at) if t is not None), default=None)

    @property
    def status(self) -> str:
        for status, at in (("cancelled", self.cancelled_at), ("rejected", self.rejected_at),
                           ("completed", self.completed_at),
                           ("in_progress", self.started_at),
                           ("acknowledged", self.acknowledged_at)):
            if at is not None:
                return status
        return "dispatched"


@dataclass
class Lane:
    """One department that had a task, with its tasks in dispatch order."""

    department: str
    name: str
    bars: list[Bar] = field(default_factory=list)


@dataclass(frozen=True)
class LevelMark:
    """The incident's level from `at` on (`was` the level before; None for the opening one)."""

    at: datetime
    level: str
    was: str | None = None
    by: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class PlaybookInfo:
    """The plan the incident was matched with."""

    id: str
    version: str
    title: str = ""
    why: str = ""


@dataclass(frozen=True)
class TaskTimes:
    """How fast one task was answered: dispatch -> acknowledgement (or a start without one)
    and dispatch -> completion; None for what did not happen."""

    task_id: str
    department: str
    name: str
    notice: bool
    to_ack: timedelta | None
    to_complete: timedelta | None


@dataclass(frozen=True)
class Durations:
    """The key durations and counts. `tasks` counts the plan's tasks, `notices` the 督办
    notices; `overdue_tasks` those with a missed deadline; `escalations` the escalated entries."""

    alarm_to_dispatch: timedelta | None
    per_task: list[TaskTimes]
    total: timedelta | None
    tasks: int
    notices: int
    overdue_tasks: int
    escalations: int
    delivery_failures: int


@dataclass
class Review:
    """Everything the after-action review of one incident shows, in one value."""

    incident: Incident
    entries: list[TimelineEntry]
    lanes: list[Lane]
    levels: list[LevelMark]
    playbook: PlaybookInfo | None
    start: datetime
    end: datetime
    durations: Durations
    names: dict[str, str]
    site_name: str = ""
    address: str = ""
    marks: list[Mark] = field(default_factory=list)
    """Escalations about no task (a feedback that could not be delivered)."""

    def name(self, department: str | None) -> str:
        """The display name of a department (its id when it has none)."""
        if department is None:
            return ""
        return self.names.get(department, department)

    def is_summons(self, task_id: str | None) -> bool:
        """Whether the task was a whistle's call to report for duty (its dispatch says so)."""
        return any(e.type == "task_dispatched" and e.task_id == task_id
                   and (e.detail or {}).get("summons") for e in self.entries)

    @property
    def alarms(self) -> list[TimelineEntry]:
        return [e for e in self.entries if e.type == "alarm_received"]

    @property
    def bars(self) -> list[Bar]:
        return [bar for lane in self.lanes for bar in lane.bars]


def is_notice(task_id: str, incident_id: str, detail: dict[str, Any] | None = None) -> bool:
    """Whether a task is a 督办 notice: its step (after `<incident_id>.`) holds a ':'
    (`isolate_power:ack_overdue:safety_office`), or its dispatch names `notice_of`."""
    if detail and detail.get("notice_of"):
        return True
    prefix = f"{incident_id}."
    step = task_id[len(prefix):] if task_id.startswith(prefix) else task_id
    return ":" in step


def review(timeline: Timeline, names: dict[str, str], *,
           until: datetime | None = None) -> Review:
    """The review of `timeline`; `names` maps department ids to display names (派出所).
    The window runs from the first entry to the last (or to the closing); `until` extends it
    for an incident still open (the time the review is made)."""
    incident = timeline.incident
    entries = sorted(timeline.entries, key=lambda e: e.at)
    start = entries[0].at if entries else incident.opened_at
    end = max([start, *(e.at for e in entries[-1:]),
               *([incident.closed_at] if incident.closed_at else []),
               *([until] if until and incident.closed_at is None else [])])
    bars: dict[str, Bar] = {}
    marks: list[Mark] = []
    overdue: list[tuple[str, TimelineEntry]] = []
    for e in entries:
        if e.task_id is not None and (e.type.startswith("task_") or e.type in _MARKED):
            _record(bars, e, e.task_id, incident.incident_id)
        if e.type in _MARKED:
            mark = Mark(e.at, e.type, e.task_id, e.department, dict(e.detail or {}))
            (bars[e.task_id].escalations if e.task_id in bars else marks).append(mark)
        elif e.type == "task_overdue" and e.task_id is not None:
            overdue.append((e.task_id, e))
    for task_id, e in overdue:
        _overdue(bars[task_id], e, end)
    lanes: dict[str, Lane] = {}
    for bar in bars.values():  # bars are in first-seen order, so lanes are too
        lanes.setdefault(bar.department, Lane(bar.department, names.get(bar.department,
                                                                        bar.department)))
        lanes[bar.department].bars.append(bar)
    by_lane = [bar for lane in lanes.values() for bar in lane.bars]
    opened = next((e for e in entries if e.type == "incident_opened"), None)
    detail = (opened.detail or {}) if opened else {}
    return Review(
        incident=incident, entries=entries, lanes=list(lanes.values()),
        levels=_levels(incident, entries, start), playbook=_playbook(incident, entries),
        start=start, end=end, durations=_durations(incident, entries, by_lane, names),
        names=dict(names), site_name=str(detail.get("site_name") or ""),
        address=str(detail.get("address") or ""), marks=marks)


_WHEN = {"task_acknowledged": "acknowledged_at", "task_started": "started_at",
         "task_completed": "completed_at", "task_rejected": "rejected_at",
         "task_cancelled": "cancelled_at"}


def _record(bars: dict[str, Bar], e: TimelineEntry, task_id: str, incident_id: str) -> None:
    detail = e.detail or {}
    bar = bars.get(task_id)
    if bar is None:  # a timeline without the dispatch (one department's view) still shows it
        bar = bars[task_id] = Bar(task_id=task_id, department=e.department or "unknown",
                                  notice=is_notice(task_id, incident_id))
    if bar.department == "unknown" and e.department:
        bar.department = e.department
    if e.type == "task_dispatched" and bar.dispatched_at is None:
        bar.dispatched_at = e.at
        bar.action = str(detail.get("action") or "")
        bar.step = detail.get("step")
        bar.notice_of = detail.get("notice_of")
        bar.notice = bar.notice or is_notice(task_id, incident_id, detail)
        bar.ack_due, bar.complete_due = _due(detail, "ack_due"), _due(detail, "complete_due")
    elif e.type in _WHEN and getattr(bar, _WHEN[e.type]) is None:
        setattr(bar, _WHEN[e.type], e.at)
        bar.by = e.by or bar.by


def _due(detail: dict[str, Any], name: str) -> datetime | None:
    try:
        return parse_timestamp(detail[name])
    except (KeyError, TypeError, ValueError):
        return None


def _overdue(bar: Bar, e: TimelineEntry, end: datetime) -> None:
    """From the missed deadline until the answer that settles it, or the window's end."""
    detail = e.detail or {}
    deadline = str(detail.get("deadline") or "ack")
    if any(s.deadline == deadline for s in bar.overdue):
        return
    try:
        start = parse_timestamp(detail["due"])
    except (KeyError, ValueError):
        start = e.at
    settled = bar.answered_at if deadline == "ack" else bar.finished_at
    stop = end if settled is None else max(start, settled)
    bar.overdue.append(Stretch(deadline, start, max(start, stop), open=settled is None))


def _levels(incident: Incident, entries: list[TimelineEntry], start: datetime
            ) -> list[LevelMark]:
    changes = [e for e in entries if e.type == "level_changed"]
    opened = next((e for e in entries if e.type == "incident_opened"), None)
    first = (opened.detail or {}).get("level") if opened else None
    if first is None:
        first = (changes[0].detail or {}).get("from") if changes else incident.level
    levels = [LevelMark(opened.at if opened else start, str(first))]
    for e in changes:
        detail = e.detail or {}
        levels.append(LevelMark(e.at, str(detail.get("to")), was=detail.get("from"), by=e.by,
                                note=detail.get("note")))
    return levels


def _playbook(incident: Incident, entries: list[TimelineEntry]) -> PlaybookInfo | None:
    matched = next((e for e in entries if e.type == "playbook_matched"), None)
    if matched is None:
        ref = incident.playbook
        return PlaybookInfo(ref.id, ref.version) if ref.id else None
    d = matched.detail or {}
    return PlaybookInfo(str(d.get("playbook_id") or incident.playbook.id),
                        str(d.get("version") or incident.playbook.version),
                        str(d.get("title") or ""), str(d.get("why") or ""))


def _since(a: datetime | None, b: datetime | None) -> timedelta | None:
    return None if a is None or b is None else b - a


def _durations(incident: Incident, entries: list[TimelineEntry], bars: list[Bar],
               names: dict[str, str]) -> Durations:
    first = {t: next((e.at for e in entries if e.type == t), None)
             for t in ("alarm_received", "task_dispatched")}
    times = [TaskTimes(b.task_id, b.department, names.get(b.department, b.department), b.notice,
                       _since(b.dispatched_at, b.acknowledged_at or b.started_at),
                       _since(b.dispatched_at, b.completed_at)) for b in bars]
    return Durations(
        alarm_to_dispatch=_since(first["alarm_received"], first["task_dispatched"]),
        per_task=times,
        total=_since(incident.opened_at, incident.closed_at),
        tasks=sum(not b.notice for b in bars), notices=sum(b.notice for b in bars),
        overdue_tasks=sum(bool(b.overdue) for b in bars),
        escalations=sum(e.type == "escalated" for e in entries),
        delivery_failures=sum(e.type == "delivery_failed" for e in entries))


def format_duration(td: timedelta | None) -> str:
    """A duration as a review prints it: "42 s", "3 min 05 s", "1 h 02 min"; "—" for None."""
    if td is None:
        return "—"
    seconds = int(td.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds < 60:
        return f"{sign}{seconds} s"
    if seconds < 3600:
        return f"{sign}{seconds // 60} min {seconds % 60:02d} s"
    return f"{sign}{seconds // 3600} h {seconds % 3600 // 60:02d} min"
