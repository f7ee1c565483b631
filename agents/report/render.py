"""The after-action review (事后倒查) as files, pure string builders: the contract's JSON, a CSV
Excel opens, Markdown for a wiki or a message, and one printable HTML page (built by
`report_html`). The words they share (Chinese names, stamps, sentences) are in `wording`.

    >>> r = review(timeline, names)
    >>> to_csv(r)[:3] == "\\ufeff".encode("utf-8")     # Excel reads the BOM as UTF-8
    True
    >>> to_markdown(r).splitlines()[0]
    '# 事后倒查报告：银丰国际生物城 3号实验室'

Everything that comes from an alarm or a department is data, never markup: Markdown cells are
escaped so no `|`, backtick or newline breaks a table, CSV cells that a spreadsheet would take
for a formula get a leading apostrophe, and the HTML escapes every text and attribute.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from agents.report.drill import drill_scores
from agents.report.report_html import report
from agents.report.review import ENTRY_NAMES, LOCAL, Review, format_duration
from agents.report.wording import (
    DEADLINE_NAMES,
    STATUS_NAMES,
    describe,
    duration_rows,
    facts,
    short_task,
    stamp,
)
from schemas import Timeline

__all__ = ["CSV_HEADER", "csv_cell", "md_cell", "to_csv", "to_html", "to_json", "to_markdown"]


def to_json(timeline: Timeline) -> str:
    """The contract's JSON form: `{"incident": ..., "entries": [...]}`, entries in time order,
    fields that are null left out."""
    ordered = Timeline(incident=timeline.incident,
                       entries=sorted(timeline.entries, key=lambda e: e.at))
    return json.dumps(ordered.model_dump(mode="json", exclude_none=True), ensure_ascii=False,
                      indent=2)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")
CSV_HEADER = ["at", "本地时间", "type", "类型", "department", "部门", "task_id", "alarm_id",
              "by", "detail"]


def csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # a spreadsheet runs a cell that starts like a formula: make it text (OWASP CSV injection)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(review: Review) -> bytes:
    """One row per entry, UTF-8 with a BOM (so Excel reads the Chinese), RFC 4180 quoting:
    at (RFC 3339), local time, type, its Chinese name, department id and name, task_id,
    alarm_id, by, and the detail as compact JSON."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for e in review.entries:
        detail = json.dumps(e.detail, ensure_ascii=False, separators=(",", ":")) \
            if e.detail else ""
        writer.writerow([csv_cell(v) for v in (
            e.at.isoformat(), f"{e.at.astimezone(LOCAL):%Y-%m-%d %H:%M:%S}", e.type,
            ENTRY_NAMES.get(e.type, e.type), e.department, review.name(e.department),
            e.task_id, e.alarm_id, e.by, detail)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x85\x0b\x0c]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_MD = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]",
                     "<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md_cell(value: Any) -> str:
    """Text that stays inside one Markdown table cell, as text: no `|`, backtick, newline,
    emphasis, link or HTML tag from the data takes effect."""
    text = _CONTROL.sub("", _BREAKS.sub(" ", "" if value is None else str(value)))
    return text.translate(_MD).strip()


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) or " " for c in row) + " |" for row in rows]
    return [*lines, ""]


def to_markdown(review: Review) -> str:
    """Title, the facts, the key durations, each department's tasks, and the event log."""
    inc = review.incident
    title = md_cell(review.site_name or inc.site_id)
    out = [f"# {'【演练】' if inc.drill else ''}事后倒查报告：{title}", "",
           f"事件 {md_cell(inc.incident_id)} · 时间均为北京时间（Asia/Shanghai）", "",
           "## 基本情况", ""]
    out += _table(["项目", "内容"], [[label, text] for _, label, text in facts(review)])
    out += ["## 关键时长", ""]
    out += _table(["项目", "部门", "用时 / 数量"],
                  [[label, dept, value] for _, label, dept, value in duration_rows(review)])
    if inc.drill:
        out += ["## 演练评分", ""]
        out += _table(["部门", "任务", "按时接收", "按时完成", "得分", "未达要求"],
                      [[s.name, s.tasks, f"{s.ack_met}/{s.tasks}", f"{s.complete_met}/{s.tasks}",
                        "—" if s.score is None else s.score, "、".join(s.missed) or "—"]
                       for s in drill_scores(review)])
    out += ["## 各部门处置情况", ""]
    rows = []
    for lane in review.lanes:
        for b in lane.bars:
            late = "、".join(f"{DEADLINE_NAMES.get(s.deadline, s.deadline)}超时 "
                            f"{format_duration(s.end - s.start)}{'（未解除）' if s.open else ''}"
                            for s in b.overdue)
            marks = "、".join(f"{stamp(m.at, review)} {ENTRY_NAMES.get(m.type, m.type)}"
                             for m in b.escalations)
            rows.append([lane.name, ("督办：" if b.notice and not b.action.startswith("督办")
                                     else "") + b.action,
                         stamp(b.dispatched_at, review), stamp(b.acknowledged_at, review),
                         stamp(b.started_at, review),
                         stamp(b.finished_at, review), STATUS_NAMES.get(b.status, b.status),
                         late or "—", marks or "—"])
    out += _table(["部门", "任务", "派发", "确认接收", "开始处置", "完成/退回", "状态", "超时",
                   "督办"], rows)
    out += ["## 事件记录", ""]
    out += _table(["时间", "类型", "部门", "任务", "报警", "执行人", "详情"],
                  [[stamp(e.at, review), ENTRY_NAMES.get(e.type, e.type),
                    review.name(e.department), short_task(e.task_id, review), e.alarm_id, e.by,
                    describe(e, review)] for e in review.entries])
    return "\n".join(out)


def to_html(review: Review) -> str:
    """One self-contained, printable HTML page (inline CSS and SVG, no script, nothing
    fetched): header, swimlane chart, key durations, event log. See `report_html`."""
    return report(review)
