"""The shift handover (交接班) as files, pure: the JSON the API answers, Markdown to paste into
a duty log or a message, and one HTML page that prints on A4 (`templates/handover.html.j2`,
autoescaped: every value from alarms and departments is escaped, nothing is marked safe).

    >>> render_handover(handover(shift, incidents, tasks, entries, names), "md")[:15]
    b'# \\xe4\\xba\\xa4\\xe6\\x8e\\xa5\\xe7\\x8f\\xad...'

Both text forms read from the same tables (`sections`): headings in Chinese with the English
beside them, times in Beijing time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agents.report.handover import ESCALATION_NAMES, Handover, IncidentRow
from agents.report.render import md_cell
from agents.report.report_html import template
from agents.report.review import format_duration
from agents.report.wording import DEADLINE_NAMES, STATUS_NAMES, stamp

__all__ = ["FORMATS", "Section", "handover_html", "handover_markdown", "render_handover",
           "sections", "span"]

FORMATS = ("json", "md", "html")

Cell = str | list[str]


@dataclass(frozen=True)
class Section:
    """One table of the handover: `id` (the HTML table's id), its title, the header and the
    rows; a cell is a text or a list of texts (an incident's open tasks); `keys` names each
    row (its incident or task id)."""

    id: str
    title: str
    header: list[str]
    rows: list[list[Cell]]
    keys: list[str]


def span(h: Handover) -> str:
    """The shift as people say it, in Beijing time."""
    return f"{stamp(h.shift.since)} – {stamp(h.shift.until)}"


def _incident(r: IncidentRow) -> list[Cell]:
    return [r.incident_id, r.place, r.kind_text, r.level_text]


def sections(h: Handover) -> list[Section]:
    """The handover's tables in reading order: the counts first, then each section."""
    c = h.counts()
    return [
        Section("summary", "概况 Summary",
                ["本班新增 Opened", "本班结案 Closed", "本班升级 Escalated", "仍在处置 Still open",
                 "当前超时任务 Overdue tasks"],
                [[str(c["opened"]), str(c["closed"]),
                  f"{c['escalated']}（{c['escalations']} 次）", str(c["still_open"]),
                  str(c["overdue"])]], ["counts"]),
        Section("opened", "本班新增 Opened",
                ["事件 Incident", "地点 Site", "类型 Kind", "级别 Level", "立案 Opened",
                 "状态 Status"],
                [[*_incident(r), stamp(r.opened_at), r.status_text] for r in h.opened],
                [r.incident_id for r in h.opened]),
        Section("closed", "本班结案 Closed",
                ["事件 Incident", "地点 Site", "类型 Kind", "级别 Level", "结案 Closed",
                 "结案原因 Reason", "历时 Took"],
                [[*_incident(r), stamp(r.closed_at), r.reason_text, format_duration(r.age)]
                 for r in h.closed],
                [r.incident_id for r in h.closed]),
        Section("escalated", "本班升级 Escalated",
                ["时间 Time", "事件 Incident", "地点 Site", "事项 What", "经过 Detail",
                 "操作人 By"],
                [[stamp(e.at), e.incident_id, e.place or "—", ESCALATION_NAMES[e.type], e.text,
                  e.by or "—"] for e in h.escalated],
                [e.incident_id for e in h.escalated]),
        Section("still-open", "仍在处置 Still open",
                ["事件 Incident", "地点 Site", "类型 Kind", "级别 Level", "状态 Status",
                 "已持续 Age", "未完成任务 Open tasks"],
                [[*_incident(r), r.status_text, format_duration(r.age),
                  [t.text for t in r.tasks] or "—"] for r in h.still_open],
                [r.incident_id for r in h.still_open]),
        Section("overdue", "当前超时 Overdue now",
                ["部门 Department", "事件 Incident", "任务 Task", "状态 Status", "超时 Missed",
                 "确认期限 Ack due", "完成期限 Complete due"],
                [[t.department_name + ("（督办）" if t.notice else ""), t.incident_id,
                  t.task_id, STATUS_NAMES.get(t.status, t.status),
                  "、".join(f"未{DEADLINE_NAMES[d]}" for d in t.overdue), stamp(t.ack_due),
                  stamp(t.complete_due)] for t in h.overdue],
                [t.task_id for t in h.overdue]),
        Section("overdue-by-department", "超时任务（按部门） Overdue by department",
                ["部门 Department", "超时任务 Overdue tasks"],
                [[name, str(n)] for _, name, n in h.overdue_by_department()],
                [d for d, _, _ in h.overdue_by_department()]),
    ]


def handover_markdown(h: Handover) -> str:
    """For a duty log (值班日志) or a message: the title, the shift, each table."""
    out = ["# 交接班报告 Shift handover", "",
           f"本班 Shift：{span(h)}（北京时间 Beijing time）；生成于 Generated {stamp(h.shift.now)}",
           ""]
    for s in sections(h):
        out += [f"## {s.title}", "", "| " + " | ".join(s.header) + " |",
                "|" + "---|" * len(s.header)]
        out += ["| " + " | ".join(md_cell("；".join(c) if isinstance(c, list) else c) or " "
                                  for c in row) + " |" for row in s.rows]
        if not s.rows:
            out.append("| 无 None |" + " |" * (len(s.header) - 1))
        out.append("")
    return "\n".join(out)


def handover_html(h: Handover) -> str:
    """One page to print and sign (A4, CJK fonts on any system); no script, nothing fetched."""
    return template("handover.html.j2").render(span=span(h), generated=stamp(h.shift.now),
                                               sections=sections(h))


def render_handover(h: Handover, fmt: str) -> bytes:
    """The handover in `fmt`, one of FORMATS, as UTF-8."""
    if fmt == "json":
        return json.dumps(h.to_json(), ensure_ascii=False, indent=2).encode("utf-8")
    return (handover_markdown(h) if fmt == "md" else handover_html(h)).encode("utf-8")
