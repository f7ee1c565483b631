"""The after-action review as one printable HTML page (事后倒查报告), pure: a header, a swimlane
chart in inline SVG (one lane per department, a bar per task), the key durations, each
department's tasks and the full event log. No script, no font, image or stylesheet from
anywhere: the page is one file to send, print on A4 and file.

    >>> page = report(review(timeline, names))
    >>> '<svg id="swimlanes"' in page and "<script" not in page
    True

Every text and attribute that comes from data goes through `html.escape`, inside the SVG too.
Hooks for tests: `svg#swimlanes`, `g.lane[data-department]`, `rect.bar[data-task-id]`,
`rect.overdue`, `.escalation`, `table#durations tr[data-key]`, `table#log tr[data-type]`.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timedelta
from string import Template

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

__all__ = ["FONTS", "report", "swimlanes"]

FONTS = ('"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei", '
         '"PingFang SC", sans-serif')
"""A font stack that has the Chinese glyphs on Linux, Windows and macOS."""

W, X0, X1 = 720, 112, 708           # the chart's width and the time axis, in viewBox units
AXIS, TRACK, PITCH, BAR_H = 24, 22, 24, 12
LEVEL_COLOURS = {"I": "#b71c1c", "II": "#e65100", "III": "#f9a825", "IV": "#1565c0"}
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
          86400, 172800, 604800)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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


def _title(text: str) -> str:
    return f"<title>{_e(text)}</title>"


def _bar(bar: Bar, y: float, scale: _Scale, review: Review) -> list[str]:
    """A task: waiting / acknowledged / in progress segments, overdue in red, escalations."""
    start = bar.dispatched_at or bar.answered_at or review.start
    stop = bar.finished_at or review.end
    x0, x1 = scale.x(start), max(scale.x(stop), scale.x(start) + 2)
    cuts = [("wait", start, bar.answered_at), ("acked", bar.acknowledged_at, bar.started_at),
            ("busy", bar.started_at, None)]
    out = []
    for cls, a, b in cuts:
        if a is None:
            continue
        b = min(t for t in (b, bar.finished_at, review.end) if t is not None)
        if b > a:
            out.append(f'<rect class="seg {cls}" x="{scale.x(a)}" y="{y}" '
                       f'width="{max(scale.x(b) - scale.x(a), 0.5):.1f}" height="{BAR_H}"/>')
    for s in bar.overdue:
        tip = (f"{DEADLINE_NAMES.get(s.deadline, s.deadline)}超时：{stamp(s.start, review)} — "
               f"{'窗口结束仍未解除' if s.open else stamp(s.end, review)}"
               f"（{format_duration(s.end - s.start)}）")
        out.append(f'<rect class="overdue" data-deadline="{_e(s.deadline)}" '
                   f'x="{scale.x(s.start)}" y="{y}" height="{BAR_H}" '
                   f'width="{max(scale.x(s.end) - scale.x(s.start), 1.5):.1f}">'
                   f'{_title(tip)}</rect>')
    state = STATUS_NAMES.get(bar.status, bar.status)
    tip = (f"{review.name(bar.department)}：{bar.action}\n{short_task(bar.task_id, review)} · "
           f"{state} · 派发 {stamp(bar.dispatched_at, review)} · 接收 "
           f"{stamp(bar.acknowledged_at, review)} · 开始 {stamp(bar.started_at, review)} · "
           f"结束 {stamp(bar.finished_at, review)}")
    kind = " notice" if bar.notice else ""
    kind += " open" if bar.finished_at is None else f" {bar.status}"
    out.append(f'<rect class="bar{kind}" data-task-id="{_e(bar.task_id)}" x="{x0}" y="{y}" '
               f'width="{x1 - x0:.1f}" height="{BAR_H}" rx="2">{_title(tip)}</rect>')
    if bar.rejected_at is not None:
        out.append(f'<text class="cap" x="{x1 + 2}" y="{y + 10}">✕</text>')
    label = bar.action
    if bar.notice:
        about = next((b for b in review.bars if b.task_id == bar.notice_of), None)
        label = "督办" + (f"·{review.name(about.department)}" if about else "")
    inside = x1 - x0 - 8
    if _width(label, 10) <= inside or X1 - x1 < 40:
        text, x = _fit(label, inside, 10), x0 + 4
    else:
        text, x = _fit(label, X1 - x1 - 6, 10), x1 + 4
    if text:
        out.append(f'<text class="label" x="{x:.1f}" y="{y + 9.5}">{_e(text)}</text>')
    for m in bar.escalations:
        mx = scale.x(m.at)
        tip = f"{ENTRY_NAMES.get(m.type, m.type)} {stamp(m.at, review)}：" + _mark_text(m, review)
        out.append(f'<polygon class="escalation {_e(m.type)}" points="{mx - 5},{y - 8} '
                   f'{mx + 5},{y - 8} {mx},{y}">{_title(tip)}</polygon>')
    return out


def _mark_text(mark: Mark, review: Review) -> str:
    found = next((e for e in review.entries if e.type == mark.type and e.at == mark.at
                  and e.task_id == mark.task_id), None)
    return describe(found, review) if found else ""


def swimlanes(review: Review) -> str:
    """The chart: a time axis (Beijing time), a track of alarms, a band of the level over
    time, then one lane per department with a bar per task."""
    scale = _Scale(review.start, review.end)
    heights = [8 + PITCH * len(lane.bars) for lane in review.lanes]
    top = AXIS + 2 * TRACK + 6
    height = top + sum(heights) + 26
    body: list[str] = []
    for x, label in scale.ticks():
        body.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{AXIS - 4}" y2="{height - 22}"/>'
                    f'<text class="tick" x="{x}" y="{AXIS - 8}">{_e(label)}</text>')
    body.append(f'<text class="track-name" x="{X0 - 8}" y="{AXIS + 15}">报警</text>')
    for a in review.alarms:
        tip = f"收到报警 {stamp(a.at, review)}：{describe(a, review)}"
        body.append(f'<circle class="alarm" cx="{scale.x(a.at)}" cy="{AXIS + 11}" r="4.5">'
                    f"{_title(tip)}</circle>")
    for m in review.marks:  # about no task: a feedback to the reporters that failed
        mx, tip = scale.x(m.at), f"{ENTRY_NAMES.get(m.type, m.type)} {stamp(m.at, review)}："
        body.append(f'<polygon class="escalation {_e(m.type)}" points="{mx - 5},{AXIS + 4} '
                    f'{mx + 5},{AXIS + 4} {mx},{AXIS + 12}">'
                    f"{_title(tip + _mark_text(m, review))}</polygon>")
    y = AXIS + TRACK
    body.append(f'<text class="track-name" x="{X0 - 8}" y="{y + 15}">级别</text>')
    for i, lm in enumerate(review.levels):
        until = review.levels[i + 1].at if i + 1 < len(review.levels) else review.end
        x0, x1 = scale.x(lm.at), max(scale.x(until), scale.x(lm.at) + 2)
        who = f" · {lm.by}" if lm.by else ""
        note = f"：{lm.note}" if lm.note else ""
        was = f"{lm.was} 级 → " if lm.was else "立案 "
        tip = f"{was}{lm.level} 级 {stamp(lm.at, review)}{who}{note}"
        fill = LEVEL_COLOURS.get(lm.level, "#546e7a")
        body.append(f'<rect class="level" data-level="{_e(lm.level)}" x="{x0}" y="{y + 4}" '
                    f'width="{x1 - x0:.1f}" height="14" fill="{fill}">{_title(tip)}</rect>')
        if x1 - x0 > 30:
            body.append(f'<text class="level-text" x="{x0 + 4}" y="{y + 15}">'
                        f"{_e(lm.level)} 级</text>")
    y = top
    for lane, h in zip(review.lanes, heights, strict=True):
        parts = [f'<rect class="lane-bg" x="0" y="{y}" width="{W}" height="{h}"/>',
                 f'<text class="lane-name" x="{X0 - 8}" y="{y + h / 2 + 4:.1f}">'
                 f"{_e(_fit(lane.name, X0 - 14, 12))}{_title(lane.name)}</text>"]
        for i, bar in enumerate(lane.bars):
            parts += _bar(bar, y + 10 + i * PITCH, scale, review)
        body.append(f'<g class="lane" data-department="{_e(lane.department)}">'
                    + "".join(parts) + "</g>")
        y += h
    for at, word in ((review.incident.opened_at, "立案"), (review.incident.closed_at, "结案")):
        if at is not None and review.start <= at <= review.end:
            x = scale.x(at)
            anchor = "start" if x < X0 + 60 else "end" if x > X1 - 60 else "middle"
            body.append(f'<line class="edge" x1="{x}" x2="{x}" y1="{top}" y2="{y}"/>'
                        f'<text class="edge-text" x="{x}" y="{y + 14}" text-anchor="{anchor}">'
                        f"{word} {_e(stamp(at, review))}</text>")
    return (f'<svg id="swimlanes" viewBox="0 0 {W} '
            f'{height}" role="img" aria-label="处置泳道图">' + "".join(body) + "</svg>")


_LEGEND = (("wait", "等待接收"), ("acked", "已接收"), ("busy", "处置中"), ("overdue", "超时"),
           ("notice", "督办通知"))


def _legend() -> str:
    items = "".join(f'<span><i class="sw {cls}"></i>{word}</span>' for cls, word in _LEGEND)
    return (f'<p class="legend">{items}<span><i class="sw tri"></i>督办升级 / 推送失败</span>'
            '<span><i class="sw dot"></i>报警</span></p>')


_LONG = {"level", "playbook", "confirmation", "tasks", "site", "address", "reporters"}


def _facts(review: Review) -> str:
    rows: list[str] = []
    pair: list[str] = []
    for key, label, text in facts(review):
        span = ' colspan="3"' if key in _LONG else ""
        cell = f'<th>{_e(label)}</th><td data-key="{_e(key)}"{span}>{_e(text)}</td>'
        if span:
            if pair:  # a short one waiting for its partner keeps its place
                rows.append(f"<tr>{pair.pop()}<th></th><td></td></tr>")
            rows.append(f"<tr>{cell}</tr>")
        else:
            pair.append(cell)
            if len(pair) == 2:
                rows.append(f"<tr>{''.join(pair)}</tr>")
                pair = []
    if pair:
        rows.append(f'<tr>{pair[0]}<th></th><td></td></tr>')
    return f'<table id="facts" class="facts"><tbody>{"".join(rows)}</tbody></table>'


_LATE = ' class="late"'


def _durations(review: Review) -> str:
    late = {f"{s.deadline}:{b.task_id}"
            for b in review.bars for s in b.overdue}
    rows = "".join(
        f'<tr data-key="{_e(key)}"{_LATE if key in late else ""}><td>{_e(label)}'
        f'</td><td>{_e(dept)}</td><td class="num">{_e(value)}</td></tr>'
        for key, label, dept, value in duration_rows(review))
    return ('<table id="durations"><thead><tr><th>项目</th><th>部门</th><th>用时 / 数量</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>")


def _departments(review: Review) -> str:
    rows = []
    for lane in review.lanes:
        for b in lane.bars:
            late = "、".join(f"{'接收' if s.deadline == 'ack' else '完成'}超时 "
                            + format_duration(s.end - s.start).replace(" ", "\u00a0")
                            for s in b.overdue) or "—"
            action = ("督办：" if b.notice and not b.action.startswith("督办") else "") + b.action
            rows.append(
                f'<tr data-task-id="{_e(b.task_id)}"><td>{_e(lane.name)}</td>'
                f"<td>{_e(action)}</td>"
                + "".join(f'<td class="num">{_e(stamp(t, review))}</td>' for t in (
                    b.dispatched_at, b.acknowledged_at, b.started_at, b.finished_at))
                + f"<td>{_e(STATUS_NAMES.get(b.status, b.status))}</td><td>{_e(late)}</td>"
                f"<td class=\"num\">{f'{len(b.escalations)} 次' if b.escalations else '—'}"
                "</td></tr>")
    return ('<table id="departments"><thead><tr><th>部门</th><th>任务</th><th>派发</th>'
            "<th>接收</th><th>开始</th><th>完成/退回</th><th>状态</th><th>超时</th><th>督办</th>"
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


_WARN = {"task_overdue", "escalated", "delivery_failed", "task_rejected"}


def _log(review: Review) -> str:
    rows = []
    for e in review.entries:
        warn = " warn" if e.type in _WARN else ""
        ref = short_task(e.task_id, review) or (e.alarm_id or "")
        rows.append(f'<tr data-type="{_e(e.type)}"><td class="num">{_e(stamp(e.at, review))}'
                    f'</td><td><span class="tag{warn}">{_e(ENTRY_NAMES.get(e.type, e.type))}'
                    f"</span></td><td>{_e(review.name(e.department))}</td>"
                    f'<td class="ref">{_e(ref)}</td><td>{_e(e.by)}</td>'
                    f"<td>{_e(describe(e, review))}</td></tr>")
    return ('<table id="log"><thead><tr><th>时间</th><th>类型</th><th>部门</th>'
            "<th>任务 / 报警</th><th>执行人</th><th>详情</th></tr></thead>"
            f'<tbody>{"".join(rows)}</tbody></table>')


CSS = Template("""
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: $fonts; color: #1b1f24; background: #fff; margin: 0 auto; max-width: 960px;
  padding: 28px 32px; font-size: 13px; line-height: 1.5; }
header { text-align: center; border-bottom: 3px double #a31f1f; padding-bottom: 8px; }
header .org { color: #a31f1f; letter-spacing: .3em; font-size: 12px; margin: 0; }
h1 { font-size: 24px; letter-spacing: .25em; margin: 4px 0 2px; }
header .sub { margin: 0; font-size: 15px; }
header .meta { margin: 2px 0 0; color: #5a6270; font-size: 11px; }
h2 { font-size: 15px; margin: 18px 0 6px; padding-left: 8px; border-left: 4px solid #a31f1f;
  break-after: avoid; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 0 0 6px; }
th, td { border: 1px solid #c6ccd5; padding: 3px 6px; text-align: left; vertical-align: top; }
thead th, .facts th { background: #eef1f5; font-weight: 600; white-space: nowrap; }
.facts th { width: 5.5em; }
thead { display: table-header-group; }
tr, figure, g.lane { break-inside: avoid; page-break-inside: avoid; }
td.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
#durations td.num { text-align: right; }
#durations tr.late td, #departments td.late { color: #b71c1c; font-weight: 600; }
#log td { font-size: 12px; }
#log td:nth-child(-n+3), #departments td:nth-child(1), #departments td:nth-child(7),
#durations td:nth-child(2) { white-space: nowrap; }
#log td:nth-child(5) { min-width: 7.5em; }
#log td.ref { font-size: 11px; color: #5a6270; word-break: break-all; }
.tag { display: inline-block; padding: 0 5px; border-radius: 3px; background: #eef1f5;
  white-space: nowrap; }
.tag.warn { background: #fbe3e3; color: #b71c1c; }
figure { margin: 0; }
svg { display: block; width: 100%; height: auto; }
svg text { font-family: $fonts; fill: #1b1f24; }
.legend { margin: 2px 0 6px; font-size: 11px; color: #3c4450; }
.legend span { margin-right: 14px; white-space: nowrap; }
.sw { display: inline-block; width: 18px; height: 9px; margin-right: 4px;
  vertical-align: middle; border: 1px solid #7d8694; }
.sw.wait, .seg.wait { background: #f6d58b; fill: #f6d58b; }
.sw.acked, .seg.acked { background: #b7d4ef; fill: #b7d4ef; }
.sw.busy, .seg.busy { background: #6fa8dc; fill: #6fa8dc; }
.sw.overdue { background: #e53935; }
.sw.notice { background: #fff; border: 1.5px solid #8e44ad; }
.sw.tri { width: 0; height: 0; border: 6px solid transparent; border-top: 9px solid #c62828;
  border-bottom: 0; }
.sw.dot { width: 9px; border-radius: 50%; background: #d32f2f; border-color: #d32f2f; }
.grid { stroke: #dfe3e8; stroke-width: 1; }
.tick { font-size: 10.5px; text-anchor: middle; fill: #5a6270; }
.track-name, .lane-name { text-anchor: end; font-size: 11.5px; }
.track-name { fill: #5a6270; }
.lane-name { font-weight: 600; }
.lane-bg { fill: #fff; stroke: #e3e6ea; stroke-width: .6; }
g.lane:nth-of-type(odd) .lane-bg { fill: #f6f7f9; }
.alarm { fill: #d32f2f; stroke: #fff; stroke-width: 1; }
.level-text { font-size: 10px; fill: #fff; font-weight: 600; }
.bar { fill: none; stroke: #37474f; stroke-width: .8; }
.bar.open { stroke-dasharray: 3 2; }
.bar.notice { stroke: #8e44ad; stroke-width: 1.2; }
.overdue { fill: #e53935; fill-opacity: .85; }
.escalation { fill: #c62828; stroke: #fff; stroke-width: .6; }
.escalation.delivery_failed { fill: #6a1b9a; }
.label { font-size: 10px; paint-order: stroke; stroke: rgba(255, 255, 255, .75);
  stroke-width: 2px; stroke-linejoin: round; }
.cap { font-size: 11px; fill: #37474f; }
.edge { stroke: #455a64; stroke-width: .8; stroke-dasharray: 4 3; }
.edge-text { font-size: 10px; fill: #455a64; }
.sign { display: flex; justify-content: space-between; margin-top: 28px; font-size: 13px; }
.sign span { min-width: 30%; border-bottom: 1px solid #1b1f24; padding-bottom: 2px; }
footer { margin-top: 14px; color: #7d8694; font-size: 10.5px; text-align: center; }
@media print { body { max-width: none; padding: 0; font-size: 10pt; }
  h2 { margin-top: 12px; } td, th { padding: 2px 4px; } #log td { font-size: 8.5pt; } }
""").substitute(fonts=FONTS)

_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; font-src 'none'; "
           "base-uri 'none'; form-action 'none'")


def report(review: Review) -> str:
    """The whole page, as one string of HTML."""
    inc = review.incident
    place = review.site_name or inc.site_id
    day = review.start.astimezone(LOCAL)
    return "".join((
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>事后倒查报告 · {_e(place)} · {_e(inc.incident_id)}</title>",
        f"<style>{CSS}</style></head><body>",
        '<header><p class="org">街乡吹哨 · 部门报到</p><h1>事后倒查报告</h1>',
        f'<p class="sub">{_e(place)}</p>',
        f'<p class="meta">事件编号 {_e(inc.incident_id)} · {day.year}年{day.month}月{day.day}日'
        f" · 时间均为北京时间 · 依据事件时间线 {len(review.entries)} 条记录生成</p></header>",
        "<section><h2>一、基本情况</h2>", _facts(review), "</section>",
        "<section><h2>二、处置过程（泳道图）</h2><figure>", _legend(), swimlanes(review),
        "</figure></section>",
        "<section><h2>三、关键时长</h2>", _durations(review), "</section>",
        "<section><h2>四、各部门处置情况</h2>", _departments(review), "</section>",
        "<section><h2>五、事件记录</h2>", _log(review), "</section>",
        '<div class="sign"><span>填报人：</span><span>审核人：</span><span>日期：</span></div>',
        "<footer>由 Whistle 依据事件时间线自动生成；如有出入，以原始记录为准。</footer>",
        "</body></html>\n"))
