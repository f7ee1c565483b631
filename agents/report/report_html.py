"""The after-action review as one printable HTML page (事后倒查报告), pure: a header, a swimlane
chart in inline SVG (one lane per department, a bar per task), the key durations, each
department's tasks and the full event log. No script, no font, image or stylesheet from
anywhere: the page is one file to send, print on A4 and file.

    >>> page = report(review(timeline, names))
    >>> '<svg id="swimlanes"' in page and "<script" not in page
    True

The geometry and the words are worked out here, as plain data (`chart`, `fact_rows`,
`task_rows` ...); the markup is in `templates/report.html.j2` and `templates/swimlanes.svg.j2`,
rendered with autoescape, so every text and attribute from data is escaped, inside the SVG too,
and nothing is marked safe. Hooks for tests: `svg#swimlanes`, `g.lane[data-department]`,
`rect.bar[data-task-id]`, `rect.overdue`, `.escalation`, `table#durations tr[data-key]`,
`table#log tr[data-type]`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jinja2

from agents.report.drill import drill_scores
from agents.report.review import ENTRY_NAMES, LOCAL, Bar, Mark, Review, format_duration
from agents.report.wording import (
    DEADLINE_NAMES,
    STATUS_NAMES,
    describe,
    duration_rows,
    facts,
    short_task,
    stamp,
)

__all__ = ["Chart", "chart", "fact_rows", "log_rows", "report", "swimlanes", "task_rows",
           "template"]

W, X0, X1 = 720, 112, 708           # the chart's width and the time axis, in viewBox units
AXIS, TRACK, PITCH, BAR_H = 24, 22, 24, 12
LEVEL_COLOURS = {"I": "#b71c1c", "II": "#e65100", "III": "#f9a825", "IV": "#1565c0"}
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
          86400, 172800, 604800)


@functools.cache
def template(name: str) -> jinja2.Template:
    """A template of `templates/` beside this file, compiled once: `template("report.html.j2")`.
    Every value is HTML-escaped (autoescape) and a name it is not given is an error."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template(name)


def _width(text: str, size: float) -> float:
    """About how wide `text` is at font size `size`: a CJK character is one em."""
    return sum(size if ord(c) > 0x2e7f else size * 0.56 for c in text)


def _fit(text: str, room: float, size: float) -> str:
    if _width(text, size) <= room:
        return text
    while text and _width(text + "…", size) > room:
        text = text[:-1]
    return text + "…" if text else ""


class _Scale:
    """Times to x, over the review window with a little room at both ends."""

    def __init__(self, start: datetime, end: datetime) -> None:
        span = max((end - start).total_seconds(), 60.0)
        pad = span * 0.02
        self.t0, self.span = start.timestamp() - pad, span + 2 * pad
        self.start, self.end = start, end

    def x(self, at: datetime) -> float:
        return round(X0 + (at.timestamp() - self.t0) / self.span * (X1 - X0), 1)

    def ticks(self) -> list[tuple[float, str]]:
        """Round local times (Beijing) that fall in the window, at most about ten."""
        days = self.start.astimezone(LOCAL).date() != self.end.astimezone(LOCAL).date()
        step = next((s for s in _STEPS if self.span / s <= (6 if days else 10)), _STEPS[-1])
        offset = (self.start.astimezone(LOCAL).utcoffset() or timedelta()).total_seconds()
        t = math.ceil((self.t0 + offset) / step) * step - offset
        fmt = "%m-%d %H:%M" if days else ("%H:%M:%S" if step < 60 else "%H:%M")
        out = []
        while t <= self.t0 + self.span:
            at = datetime.fromtimestamp(t, LOCAL)
            out.append((self.x(at), f"{at:{fmt}}"))
            t += step
        return out


# --- the chart as data: what swimlanes.svg.j2 draws, in viewBox units ----------------------

@dataclass(frozen=True)
class Text:
    """A text of the chart at (x, y), with a tooltip when `tip` is set: `Text(104, 39, "报警")`."""

    x: float
    y: float
    text: str
    tip: str = ""


@dataclass(frozen=True)
class Box:
    """A rectangle of the chart. `key` is its data-* hook (the deadline, task id or level, as
    the template says) and `tip` its tooltip: `Box(230.4, 80, 3.5, "wait")`."""

    x: float
    y: float
    width: float
    cls: str = ""
    key: str = ""
    tip: str = ""
    fill: str = ""
    height: float = BAR_H


@dataclass(frozen=True)
class Dot:
    """An alarm on its track, with its tooltip: `Dot(140.2, 35, "收到报警 14:03:07：…")`."""

    x: float
    y: float
    tip: str


@dataclass(frozen=True)
class Edge:
    """The dashed line where the incident was opened or closed, from `top` to `bottom`, and
    what it says below, anchored `start`, `middle` or `end` to stay on the page."""

    x: float
    top: float
    bottom: float
    label: Text
    anchor: str


@dataclass(frozen=True)
class Triangle:
    """An escalation or a failed push (`type`), pointing down: `Triangle("escalated", ...)`."""

    type: str
    points: str
    tip: str


@dataclass(frozen=True)
class TaskBar:
    """One task drawn: its segments, overdue stretches, outline, ✕ if rejected, label, marks."""

    segments: list[Box]
    overdue: list[Box]
    outline: Box
    cap: Text | None
    label: Text | None
    marks: list[Triangle]


@dataclass(frozen=True)
class Swimlane:
    """A department's lane: its band from `y`, `height` high, its name and a bar per task."""

    department: str
    y: float
    height: float
    name: Text
    bars: list[TaskBar]


@dataclass(frozen=True)
class Chart:
    """The whole swimlane chart as data, for `swimlanes.svg.j2`: `chart(review).lanes[0]`."""

    width: int
    height: int
    grid: tuple[float, float]
    ticks: list[Text]
    alarm_track: Text
    alarms: list[Dot]
    marks: list[Triangle]
    level_track: Text
    levels: list[tuple[Box, Text | None]]
    lanes: list[Swimlane]
    edges: list[Edge]


def _triangle(mark: Mark, x: float, y: float, review: Review) -> Triangle:
    """A mark whose tip is at (x, y), its tooltip from the entry it stands for."""
    found = next((e for e in review.entries if e.type == mark.type and e.at == mark.at
                  and e.task_id == mark.task_id), None)
    tip = (f"{ENTRY_NAMES.get(mark.type, mark.type)} {stamp(mark.at, review)}："
           + (describe(found, review) if found else ""))
    return Triangle(mark.type, f"{x - 5},{y - 8} {x + 5},{y - 8} {x},{y}", tip)


def _bar(bar: Bar, y: float, scale: _Scale, review: Review) -> TaskBar:
    """A task: waiting / acknowledged / in progress segments, overdue in red, escalations."""
    start = bar.dispatched_at or bar.answered_at or review.start
    stop = bar.finished_at or review.end
    x0, x1 = scale.x(start), max(scale.x(stop), scale.x(start) + 2)
    cuts = [("wait", start, bar.answered_at), ("acked", bar.acknowledged_at, bar.started_at),
            ("busy", bar.started_at, None)]
    segments = []
    for cls, a, b in cuts:
        if a is None:
            continue
        b = min(t for t in (b, bar.finished_at, review.end) if t is not None)
        if b > a:
            segments.append(Box(scale.x(a), y, round(max(scale.x(b) - scale.x(a), 0.5), 1), cls))
    overdue = [Box(scale.x(s.start), y, round(max(scale.x(s.end) - scale.x(s.start), 1.5), 1),
                   key=s.deadline,
                   tip=f"{DEADLINE_NAMES.get(s.deadline, s.deadline)}超时：{stamp(s.start, review)}"
                       f" — {'窗口结束仍未解除' if s.open else stamp(s.end, review)}"
                       f"（{format_duration(s.end - s.start)}）")
               for s in bar.overdue]
    state = STATUS_NAMES.get(bar.status, bar.status)
    tip = (f"{review.name(bar.department)}：{bar.action}\n{short_task(bar.task_id, review)} · "
           f"{state} · 派发 {stamp(bar.dispatched_at, review)} · 接收 "
           f"{stamp(bar.acknowledged_at, review)} · 开始 {stamp(bar.started_at, review)} · "
           f"结束 {stamp(bar.finished_at, review)}")
    kind = " notice" if bar.notice else ""
    kind += " open" if bar.finished_at is None else f" {bar.status}"
    outline = Box(x0, y, round(x1 - x0, 1), "bar" + kind, bar.task_id, tip)
    cap = Text(x1 + 2, y + 10, "✕") if bar.rejected_at is not None else None
    label = bar.action
    if bar.notice:
        about = next((b for b in review.bars if b.task_id == bar.notice_of), None)
        label = "督办" + (f"·{review.name(about.department)}" if about else "")
    inside = x1 - x0 - 8
    if _width(label, 10) <= inside or X1 - x1 < 40:
        text, x = _fit(label, inside, 10), x0 + 4
    else:
        text, x = _fit(label, X1 - x1 - 6, 10), x1 + 4
    return TaskBar(segments, overdue, outline, cap, Text(round(x, 1), y + 9.5, text) if text
                   else None, [_triangle(m, scale.x(m.at), y, review) for m in bar.escalations])


def _levels(review: Review, scale: _Scale, y: float) -> list[tuple[Box, Text | None]]:
    """The band of the level over time: a box per level, named where it is wide enough."""
    out = []
    for i, lm in enumerate(review.levels):
        until = review.levels[i + 1].at if i + 1 < len(review.levels) else review.end
        x0, x1 = scale.x(lm.at), max(scale.x(until), scale.x(lm.at) + 2)
        who = f" · {lm.by}" if lm.by else ""
        note = f"：{lm.note}" if lm.note else ""
        was = f"{lm.was} 级 → " if lm.was else "立案 "
        box = Box(x0, y + 4, round(x1 - x0, 1), key=lm.level,
                  tip=f"{was}{lm.level} 级 {stamp(lm.at, review)}{who}{note}",
                  fill=LEVEL_COLOURS.get(lm.level, "#546e7a"), height=14)
        out.append((box, Text(x0 + 4, y + 15, f"{lm.level} 级") if x1 - x0 > 30 else None))
    return out


def chart(review: Review) -> Chart:
    """The chart: a time axis (Beijing time), a track of alarms, a band of the level over
    time, then one lane per department with a bar per task."""
    scale = _Scale(review.start, review.end)
    heights = [8 + PITCH * len(lane.bars) for lane in review.lanes]
    top = AXIS + 2 * TRACK + 6
    height = top + sum(heights) + 26
    lanes, y = [], top
    for lane, h in zip(review.lanes, heights, strict=True):
        name = Text(X0 - 8, round(y + h / 2 + 4, 1), _fit(lane.name, X0 - 14, 12), lane.name)
        lanes.append(Swimlane(lane.department, y, h, name, [
            _bar(bar, y + 10 + i * PITCH, scale, review) for i, bar in enumerate(lane.bars)]))
        y += h
    edges = []
    for at, word in ((review.incident.opened_at, "立案"), (review.incident.closed_at, "结案")):
        if at is not None and review.start <= at <= review.end:
            x = scale.x(at)
            anchor = "start" if x < X0 + 60 else "end" if x > X1 - 60 else "middle"
            edges.append(Edge(x, top, y, Text(x, y + 14, f"{word} {stamp(at, review)}"), anchor))
    return Chart(
        width=W, height=height, grid=(AXIS - 4, height - 22),
        ticks=[Text(x, AXIS - 8, label) for x, label in scale.ticks()],
        alarm_track=Text(X0 - 8, AXIS + 15, "报警"),
        alarms=[Dot(scale.x(a.at), AXIS + 11, f"收到报警 {stamp(a.at, review)}："
                    + describe(a, review)) for a in review.alarms],
        # marks about no task: a feedback to the reporters that failed
        marks=[_triangle(m, scale.x(m.at), AXIS + 12, review) for m in review.marks],
        level_track=Text(X0 - 8, AXIS + TRACK + 15, "级别"),
        levels=_levels(review, scale, AXIS + TRACK), lanes=lanes, edges=edges)


def swimlanes(review: Review) -> str:
    """The chart alone, as an `<svg id="swimlanes">` element: `swimlanes(review(t, names))`."""
    return template("swimlanes.svg.j2").render(chart=chart(review))


# --- the tables as data: what report.html.j2 lays out ---------------------------------------

_LONG = {"level", "playbook", "confirmation", "tasks", "site", "address", "reporters"}


@dataclass(frozen=True)
class Fact:
    """A cell of the facts table; a `wide` one has a row to itself: `Fact("kind", "类型", ...)`."""

    key: str
    label: str
    text: str
    wide: bool


def fact_rows(review: Review) -> list[list[Fact | None]]:
    """The facts two to a row, a long one alone; None is an empty cell keeping the grid."""
    rows: list[list[Fact | None]] = []
    pair: list[Fact | None] = []
    for key, label, text in facts(review):
        cell = Fact(key, label, text, key in _LONG)
        if cell.wide:
            if pair:  # a short one waiting for its partner keeps its place
                rows.append([pair.pop(), None])
            rows.append([cell])
        else:
            pair.append(cell)
            if len(pair) == 2:
                rows.append(pair)
                pair = []
    return rows + ([[pair[0], None]] if pair else [])


@dataclass(frozen=True)
class TaskRow:
    """A task in the departments table: `task_rows(r)[0].times == ["14:03:09", ...]`."""

    task_id: str
    department: str
    action: str
    times: list[str]            # dispatched, acknowledged, started, finished
    state: str
    late: str
    escalations: str


def task_rows(review: Review) -> list[TaskRow]:
    """A row per task, lane by lane, for the departments table."""
    rows = []
    for lane in review.lanes:
        for b in lane.bars:
            late = "、".join(f"{'接收' if s.deadline == 'ack' else '完成'}超时 "
                            + format_duration(s.end - s.start).replace(" ", "\u00a0")
                            for s in b.overdue) or "—"
            action = ("督办：" if b.notice and not b.action.startswith("督办") else "") + b.action
            times = [stamp(t, review) for t in (b.dispatched_at, b.acknowledged_at,
                                                 b.started_at, b.finished_at)]
            rows.append(TaskRow(b.task_id, lane.name, action, times,
                                STATUS_NAMES.get(b.status, b.status), late,
                                f"{len(b.escalations)} 次" if b.escalations else "—"))
    return rows


_WARN = {"task_overdue", "escalated", "delivery_failed", "task_rejected"}


@dataclass(frozen=True)
class LogRow:
    """An entry in the event log, `warn` when bad news: `log_rows(r)[0].kind == "收到报警"`."""

    type: str
    at: str
    warn: bool
    kind: str
    department: str
    ref: str
    by: str
    detail: str


def log_rows(review: Review) -> list[LogRow]:
    """A row per timeline entry, in time order, for the event log."""
    return [LogRow(e.type, stamp(e.at, review), e.type in _WARN, ENTRY_NAMES.get(e.type, e.type),
                   review.name(e.department), short_task(e.task_id, review) or e.alarm_id or "",
                   e.by or "", describe(e, review)) for e in review.entries]


def report(review: Review) -> str:
    """The whole page, as one string of HTML."""
    inc = review.incident
    day = review.start.astimezone(LOCAL)
    late = {f"{s.deadline}:{b.task_id}" for b in review.bars for s in b.overdue}
    return template("report.html.j2").render(
        place=review.site_name or inc.site_id, incident_id=inc.incident_id,
        day=f"{day.year}年{day.month}月{day.day}日", entries=len(review.entries),
        facts=fact_rows(review), chart=chart(review),
        durations=[(key, label, dept, value, key in late)
                   for key, label, dept, value in duration_rows(review)],
        tasks=task_rows(review), log=log_rows(review),
        drill=drill_scores(review) if inc.drill else None)
