"""The period report (pure): how a subdistrict's incidents went over some days, by the measures
接诉即办 is judged by (响应率 response rate, 解决率 resolution rate, 按时率 on-time rate), and
what the alarms say about sites and devices.

    >>> stats = period_stats(timelines, date(2026, 11, 1), date(2026, 12, 1))
    >>> stats.departments["police"].median_ack
    datetime.timedelta(seconds=40)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from schemas import Timeline, TimelineEntry

__all__ = ["DepartmentStats", "LOCAL", "PeriodStats", "TaskTimes", "percentile", "period_stats",
           "task_times"]

LOCAL = ZoneInfo("Asia/Shanghai")
_ANSWERS = ("task_acknowledged", "task_started", "task_completed", "task_rejected")


@dataclass
class TaskTimes:
    """One task's life as its timeline entries tell it."""

    task_id: str
    department: str
    dispatched: datetime
    notice: bool = False
    answered: datetime | None = None     # first acknowledgement, start, completion or rejection
    completed: datetime | None = None
    rejected: datetime | None = None
    overdue: bool = False


def task_times(entries: list[TimelineEntry]) -> list[TaskTimes]:
    """Each task of one incident, in dispatch order."""
    tasks: dict[str, TaskTimes] = {}
    for e in sorted(entries, key=lambda e: e.at):
        if e.task_id is None:
            continue
        if e.type == "task_dispatched" and e.task_id not in tasks:
            tasks[e.task_id] = TaskTimes(
                e.task_id, e.department or "", e.at,
                notice=bool((e.detail or {}).get("notice_of")))
            continue
        t = tasks.get(e.task_id)
        if t is None:
            continue
        if e.type in _ANSWERS and t.answered is None:
            t.answered = e.at
        if e.type == "task_completed":
            t.completed = e.at
        elif e.type == "task_rejected":
            t.rejected = e.at
        elif e.type == "task_overdue":
            t.overdue = True
    return list(tasks.values())


def percentile(values: list[timedelta], p: float) -> timedelta | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class DepartmentStats:
    """How one department answered its tasks (督办 notices not counted)."""

    department: str
    tasks: int = 0
    answered: int = 0
    completed: int = 0
    rejected: int = 0
    overdue: int = 0
    ack_times: list[timedelta] = field(default_factory=list)
    completion_times: list[timedelta] = field(default_factory=list)

    @property
    def response_rate(self) -> float:
        return self.answered / self.tasks if self.tasks else 0.0

    @property
    def resolution_rate(self) -> float:
        return self.completed / self.tasks if self.tasks else 0.0

    @property
    def breach_rate(self) -> float:
        return self.overdue / self.tasks if self.tasks else 0.0

    @property
    def median_ack(self) -> timedelta | None:
        return percentile(self.ack_times, 50)

    @property
    def p90_ack(self) -> timedelta | None:
        return percentile(self.ack_times, 90)

    @property
    def median_completion(self) -> timedelta | None:
        return percentile(self.completion_times, 50)

    @property
    def p90_completion(self) -> timedelta | None:
        return percentile(self.completion_times, 90)


@dataclass
class PeriodStats:
    """Everything the period report shows."""

    start: date
    end: date                         # exclusive
    incidents: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_site_type: Counter = field(default_factory=Counter)
    by_level: Counter = field(default_factory=Counter)
    closed: int = 0
    false_alarms_by_site: Counter = field(default_factory=Counter)
    alarms_by_device: Counter = field(default_factory=Counter)
    alarms: int = 0
    escalations: int = 0
    departments: dict[str, DepartmentStats] = field(default_factory=dict)
    drills: int = 0
    """Drills (演练) opened in the period: counted here only, never in the real figures."""

    def noisiest_devices(self, n: int = 10) -> list[tuple[str, int]]:
        return self.alarms_by_device.most_common(n)


def _local_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (datetime.combine(start, time(), LOCAL), datetime.combine(end, time(), LOCAL))


def period_stats(timelines: list[Timeline], start: date, end: date) -> PeriodStats:
    """The incidents opened from `start` (inclusive) to `end` (exclusive), local dates."""
    lo, hi = _local_bounds(start, end)
    stats = PeriodStats(start, end)
    for tl in timelines:
        inc = tl.incident
        if not lo <= inc.opened_at < hi:
            continue
        if inc.drill:  # an exercise: its tasks and times would flatter or blame for nothing
            stats.drills += 1
            continue
        stats.incidents += 1
        stats.by_kind[inc.kind] += 1
        stats.by_level[inc.level] += 1
        opened = next((e for e in tl.entries if e.type == "incident_opened"), None)
        stats.by_site_type[(opened.detail or {}).get("site_type", "unknown")
                           if opened else "unknown"] += 1
        stats.closed += inc.status == "closed"
        if inc.confirmation == "false_alarm":
            stats.false_alarms_by_site[inc.site_id] += 1
        for e in tl.entries:
            if e.type == "alarm_received":
                stats.alarms += 1
                device = (e.detail or {}).get("device_id")
                if device:
                    stats.alarms_by_device[device] += 1
            elif e.type == "escalated":
                stats.escalations += 1
        for t in task_times(tl.entries):
            if t.notice:
                continue
            d = stats.departments.setdefault(t.department, DepartmentStats(t.department))
            d.tasks += 1
            d.overdue += t.overdue
            d.rejected += t.rejected is not None
            if t.answered is not None:
                d.answered += 1
                d.ack_times.append(t.answered - t.dispatched)
            if t.completed is not None:
                d.completed += 1
                d.completion_times.append(t.completed - t.dispatched)
    return stats
