"""The after-action review (事后倒查) as files, pure string builders: the contract's JSON, a CSV
Excel opens, Markdown for a wiki or a message, and one printable HTML page.

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
from datetime import datetime
from typing import Any

from schemas import Timeline, TimelineEntry

from agents.report.review import ENTRY_NAMES, LOCAL, Review, format_duration

__all__ = ["csv_cell", "CAUSE_NAMES", "CLOSE_REASONS", "CONFIRMATION_NAMES", "CSV_HEADER", "DEADLINE_NAMES",
           "HAZARD_NAMES", "KIND_NAMES", "LEVEL_NAMES", "STATUS_NAMES", "describe",
           "duration_rows", "facts", "masked_phone", "md_cell", "phones_masked", "short_task",
           "stamp", "to_csv", "to_html",
           "to_json", "to_markdown", "why_zh"]

KIND_NAMES = {"smoke": "烟感报警", "heat": "温感报警", "flame": "火焰探测", "gas": "燃气泄漏",
              "electrical": "电气故障", "manual_call_point": "手动报警按钮",
              "fire_report": "火情报告", "power_trip": "跳闸停电", "hazmat": "危化品",
              "water_leak": "漏水", "structural": "结构险情", "other": "其他",
              "repeated_false_alarms": "频繁误报"}
HAZARD_NAMES = {"fire": "火灾", "electrical": "电气", "gas": "燃气", "power": "供电",
                "hazmat": "危化品", "water": "水", "structural": "结构", "other": "其他"}
LEVEL_NAMES = {"I": "特别重大", "II": "重大", "III": "较大", "IV": "一般"}
CONFIRMATION_NAMES = {"confirmed": "已确认", "unconfirmed": "未确认", "false_alarm": "误报"}
CLOSE_REASONS = {"completed": "处置完毕", "false_alarm": "误报解除", "merged": "并入其他事件"}
STATUS_NAMES = {"dispatched": "待接收", "acknowledged": "已接收", "in_progress": "处置中",
                "completed": "已完成", "rejected": "已退回"}
CAUSE_NAMES = {"ack_overdue": "超时未接收", "complete_overdue": "超时未完成",
               "delivery_failed": "推送失败"}
DEADLINE_NAMES = {"ack": "确认接收", "complete": "完成"}


# --- words shared by the Markdown and HTML forms -------------------------------------------

def stamp(at: datetime | None, review: Review | None = None) -> str:
    """Beijing time: "14:03:07" when the review lies within one day, else with the date."""
    if at is None:
        return "—"
    local = at.astimezone(LOCAL)
    if review is not None and (review.start.astimezone(LOCAL).date()
                               == review.end.astimezone(LOCAL).date()):
        return f"{local:%H:%M:%S}"
    return f"{local:%Y-%m-%d %H:%M:%S}"


def short_task(task_id: str | None, review: Review) -> str:
    """A task id without its incident's prefix: `isolate_power`."""
    if not task_id:
        return ""
    prefix = f"{review.incident.incident_id}."
    return task_id[len(prefix):] if task_id.startswith(prefix) else task_id


_WHY = [(re.compile(p), zh) for p, zh in (
    (r"^a person reported it\b.*$", "有人报警（手动报警按钮或火情报告）"),
    (r"^(\d+) independent detectors: (.*)$", r"\1 个独立探测器报警：\2"),
    (r"^verified on site by (.*): fire$", r"\1 现场核实：有火情"),
    (r"^verified on site by (.*): false alarm$", r"\1 现场核实：误报"),
    (r"^verification rejected by (.*?) \((.*)\): treated as a fire$",
     r"\1 退回核查任务（\2），按火情处置"),
    (r"^verification not (acknowledged|completed) within (\S+) \(positive alarm sequence\)$",
     r"核查任务 \2 内未\1，按火情处置（PAS）"),
    (r"^every task is completed$", "全部任务已完成"),
    (r"^merged into (\S+): (.*)$", r"并入 \1：\2"),
)]


def why_zh(text: str | None) -> str:
    """The reasons Whistle writes (confirmation, closing) in Chinese; other text unchanged."""
    text = text or ""
    for pattern, zh in _WHY:
        if pattern.match(text):
            said = pattern.sub(zh, text)
            return said.replace("未acknowledged", "未接收").replace("未completed", "未完成")
    return text


def _level(level: str | None) -> str:
    return f"{level} 级（{LEVEL_NAMES[level]}）" if level in LEVEL_NAMES else str(level)


def masked_phone(phone: str | None) -> str:
    """A phone number as a department sees it: the first three and last four digits.

    >>> masked_phone("13812345678"), masked_phone("138****5678"), masked_phone("119")
    ('138****5678', '138****5678', '****')
    """
    if not phone:
        return ""
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 8 else "****"


def phones_masked(value: Any) -> Any:
    """`value` (JSON: an incident, a timeline entry) with every `phone` in it masked; the
    original is not changed. Only an admin sees reporters' numbers whole."""
    if isinstance(value, dict):
        return {k: (masked_phone(v) if k == "phone" and isinstance(v, str) else phones_masked(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [phones_masked(v) for v in value]
    return value


def facts(review: Review) -> list[tuple[str, str, str]]:
    """The header of the review, (key, label, text) rows."""
    inc, d = review.incident, review.durations
    levels = " → ".join(f"{stamp(m.at, review)} {_level(m.level)}" for m in review.levels)
    pb = review.playbook
    plan = f"{pb.title or pb.id}（{pb.id}，第 {pb.version} 版）" if pb else "—"
    reason = CLOSE_REASONS.get(inc.close_reason or "", inc.close_reason or "")
    closed = f"{stamp(inc.closed_at)}（{reason}）" if inc.closed_at else f"未结案（{inc.status}）"
    confirm = CONFIRMATION_NAMES.get(inc.confirmation, inc.confirmation)
    if inc.confirmed_at:
        confirm += f"，{stamp(inc.confirmed_at, review)}"
    if inc.confirmed_by:
        confirm += f"：{why_zh(inc.confirmed_by)}"
    reporters = "、".join(" ".join(filter(None, (r.name, masked_phone(r.phone))))
                         for r in inc.reporters) or "—"
    tasks = (f"{d.tasks} 项任务，督办通知 {d.notices} 项；超时 {d.overdue_tasks} 项，"
             f"督办升级 {d.escalations} 次，推送失败 {d.delivery_failures} 次")
    return [
        ("incident", "事件编号", inc.incident_id),
        ("kind", "类型", f"{KIND_NAMES.get(inc.kind, inc.kind)} · "
                       f"{HAZARD_NAMES.get(inc.hazard, inc.hazard)}"),
        ("site", "地点", f"{review.site_name}（{inc.site_id}）" if review.site_name
         else inc.site_id),
        ("address", "地址", review.address or "—"),
        ("level", "级别", levels),
        ("playbook", "预案", plan),
        ("opened", "立案", stamp(inc.opened_at)),
        ("closed", "结案", closed),
        ("total", "总时长", format_duration(d.total)),
        ("alarms", "报警", f"{len(review.alarms)} 次"),
        ("confirmation", "火情确认", confirm),
        ("reporters", "报警人", reporters),
        ("tasks", "任务", tasks),
    ]


def duration_rows(review: Review) -> list[tuple[str, str, str, str]]:
    """The key durations, (key, label, department, value) rows: `alarm_to_dispatch`, `total`,
    `ack:<task_id>` and `complete:<task_id>` per task, then the counts."""
    d = review.durations
    rows = [("alarm_to_dispatch", "报警 → 首次派发", "", format_duration(d.alarm_to_dispatch)),
            ("total", "立案 → 结案", "", format_duration(d.total))]
    for t in d.per_task:
        what = f"{t.name}{'（督办）' if t.notice else ''}"
        rows.append((f"ack:{t.task_id}", "派发 → 确认接收", what, format_duration(t.to_ack)))
        rows.append((f"complete:{t.task_id}", "派发 → 处置完成", what,
                     format_duration(t.to_complete)))
    rows += [("tasks", "任务数", "", str(d.tasks)), ("notices", "督办通知数", "", str(d.notices)),
             ("overdue_tasks", "超时任务数", "", str(d.overdue_tasks)),
             ("escalations", "督办升级次数", "", str(d.escalations)),
             ("delivery_failures", "推送失败次数", "", str(d.delivery_failures))]
    return rows


def describe(e: TimelineEntry, review: Review) -> str:
    """What an entry's detail says, in a sentence of Chinese."""
    d: dict[str, Any] = e.detail or {}
    names = lambda ids: "、".join(review.name(i) for i in ids or [])  # noqa: E731
    if e.type == "alarm_received":
        parts = [KIND_NAMES.get(d.get("kind"), str(d.get("kind", "")))]
        if d.get("signal") not in (None, "alarm"):
            parts.append(str(d["signal"]))
        if d.get("device_id"):
            parts.append(f"设备 {d['device_id']}")
        if d.get("reporter"):
            parts.append(f"报警人 {d['reporter']}")
        if d.get("description"):
            parts.append(f"“{d['description']}”")
        return " · ".join(p for p in parts if p)
    if e.type == "incident_opened":
        return (f"{d.get('site_name') or d.get('site_id', '')}，{_level(d.get('level'))}，"
                f"{KIND_NAMES.get(d.get('kind'), d.get('kind', ''))}")
    if e.type == "playbook_matched":
        return f"{d.get('title', '')}（{d.get('playbook_id', '')}，第 {d.get('version', '')} 版）"
    if e.type == "task_dispatched":
        unit = f"（{d['unit']}）" if d.get("unit") else ""
        due = (f"；限 {stamp(_time(d.get('ack_due')), review)} 前接收"
               if _time(d.get("ack_due")) else "")
        return f"{str(d.get('action', '')).rstrip('。')}{unit}{due}"
    if e.type in ("task_acknowledged", "task_started", "task_completed", "task_rejected"):
        outcome = {"confirmed": "现场确认有火情", "false_alarm": "现场核实为误报"}
        return "；".join(filter(None, (outcome.get(d.get("outcome")), d.get("note"))))
    if e.type == "task_overdue":
        return (f"未在 {stamp(_time(d.get('due')), review)} 前"
                f"{DEADLINE_NAMES.get(d.get('deadline'), str(d.get('deadline')))}")
    if e.type == "escalated":
        text = CAUSE_NAMES.get(d.get("cause"), str(d.get("cause", "")))
        if d.get("notify"):
            text += f"，通知 {names(d['notify'])}"
        if d.get("times"):
            text += f"（第 {d.get('n', 1)}/{d['times']} 次）"
        return text + ("，提升事件级别" if d.get("raise_level") else "")
    if e.type == "level_changed":
        text = f"{_level(d.get('from'))} → {_level(d.get('to'))}"
        return text + (f"：{d['note']}" if d.get("note") else "")
    if e.type == "incident_confirmed":
        return why_zh(d.get("why"))
    if e.type == "incident_merged":
        return f"并入 {'、'.join(map(str, d.get('merged', [])))}"
    if e.type == "incident_closed":
        reason = CLOSE_REASONS.get(d.get("reason"), str(d.get("reason", "")))
        return "：".join(filter(None, (reason, why_zh(d.get("why")))))
    if e.type == "delivery_failed":
        return (f"推送至 {review.name(d.get('target')) or d.get('target', '')} 失败"
                f"（{d.get('attempts', '?')} 次）：{d.get('error', '')}")
    if e.type == "reporter_feedback":
        to = "、".join(str(r.get("name") or masked_phone(r.get("phone"))) for r in d.get("to", [])
                      if isinstance(r, dict))
        return f"致 {to}：{d.get('message', '')}"
    return "；".join(f"{k}: {v}" for k, v in d.items())


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


# --- the four forms ------------------------------------------------------------------------

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
    out = [f"# 事后倒查报告：{title}", "",
           f"事件 {md_cell(inc.incident_id)} · 时间均为北京时间（Asia/Shanghai）", "",
           "## 基本情况", ""]
    out += _table(["项目", "内容"], [[label, text] for _, label, text in facts(review)])
    out += ["## 关键时长", ""]
    out += _table(["项目", "部门", "用时 / 数量"],
                  [[label, dept, value] for _, label, dept, value in duration_rows(review)])
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
    from agents.report.report_html import report  # report_html builds on the words above

    return report(review)
