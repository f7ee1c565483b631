"""The words of the after-action review (事后倒查), shared by its Markdown and HTML forms: the
Chinese names of kinds, levels, statuses and causes, Beijing-time stamps, the header rows, the
key durations, one sentence per timeline entry, and phone numbers masked.

    >>> why_zh("every task is completed"), masked_phone("13812345678")
    ('全部任务已完成', '138****5678')

Everything here returns plain text; escaping it for Markdown, CSV or HTML is the caller's job.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from agents.report.review import LOCAL, Review, format_duration
from schemas import TimelineEntry

__all__ = ["CAUSE_NAMES", "CLOSE_REASONS", "CONFIRMATION_NAMES", "DEADLINE_NAMES", "HAZARD_NAMES",
           "KIND_NAMES", "LEVEL_NAMES", "STATUS_NAMES", "describe", "duration_rows", "facts",
           "masked_phone", "phones_masked", "short_task", "stamp", "why_zh"]

KIND_NAMES = {"smoke": "烟感报警", "heat": "温感报警", "flame": "火焰探测", "gas": "燃气泄漏",
              "electrical": "电气故障", "manual_call_point": "手动报警按钮",
              "fire_report": "火情报告", "power_trip": "跳闸停电", "hazmat": "危化品",
              "water_leak": "漏水", "structural": "结构险情", "other": "其他",
              "repeated_false_alarms": "频繁误报"}
HAZARD_NAMES = {"fire": "火灾", "electrical": "电气", "gas": "燃气", "power": "供电",
                "hazmat": "危化品", "water": "水", "structural": "结构", "other": "其他"}
LEVEL_NAMES = {"I": "特别重大", "II": "重大", "III": "较大", "IV": "一般"}
CONFIRMATION_NAMES = {"confirmed": "已确认", "unconfirmed": "未确认", "false_alarm": "误报"}
CLOSE_REASONS = {"completed": "处置完毕", "false_alarm": "误报解除", "merged": "并入其他事件",
                 "handled": "人工结案", "duplicate": "重复事件"}
STATUS_NAMES = {"dispatched": "待接收", "acknowledged": "已接收", "in_progress": "处置中",
                "completed": "已完成", "rejected": "已退回", "cancelled": "已撤销"}
CAUSE_NAMES = {"ack_overdue": "超时未接收", "complete_overdue": "超时未完成",
               "delivery_failed": "推送失败"}
DEADLINE_NAMES = {"ack": "确认接收", "complete": "完成"}


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
    if e.type in ("alarm_received", "alarm_silenced"):
        kind = str(d.get("kind", ""))
        parts = [KIND_NAMES.get(kind, kind)]
        if d.get("signal") not in (None, "alarm"):
            parts.append(str(d["signal"]))
        if d.get("device_id"):
            parts.append(f"设备 {d['device_id']}")
        if d.get("reporter"):
            parts.append(f"报警人 {d['reporter']}")
        if d.get("description"):
            parts.append(f"“{d['description']}”")
        if d.get("broke_silence"):
            parts.append(f"突破检修屏蔽 {d['broke_silence']}")
        if e.type == "alarm_silenced":
            parts.append("检修屏蔽中，未派发任务")
        return " · ".join(p for p in parts if p)
    if e.type == "incident_opened":
        kind = str(d.get("kind", ""))
        return (f"{d.get('site_name') or d.get('site_id', '')}，{_level(d.get('level'))}，"
                f"{KIND_NAMES.get(kind, kind)}")
    if e.type == "playbook_matched":
        return f"{d.get('title', '')}（{d.get('playbook_id', '')}，第 {d.get('version', '')} 版）"
    if e.type == "task_dispatched":
        unit = f"（{d['unit']}）" if d.get("unit") else ""
        due = (f"；限 {stamp(_time(d.get('ack_due')), review)} 前接收"
               if _time(d.get("ack_due")) else "")
        return f"{str(d.get('action', '')).rstrip('。')}{unit}{due}"
    if e.type in ("task_acknowledged", "task_started", "task_completed", "task_rejected",
                  "task_progress", "task_cancelled"):
        outcome = {"confirmed": "现场确认有火情", "false_alarm": "现场核实为误报"}
        duty = "到岗报到" if e.type == "task_acknowledged" and review.is_summons(e.task_id) \
            else None
        return "；".join(filter(None, (duty, outcome.get(str(d.get("outcome"))),
                                       d.get("note"))))
    if e.type == "task_reassigned":
        return "；".join(filter(None, (f"转派给 {review.name(d.get('department'))}"
                                       f"（{d.get('to', '')}）", d.get("note"))))
    if e.type == "whistle_blown":
        due = "、".join(f"{review.name(dept)} {stamp(_time(at), review)} 前"
                       for dept, at in (d.get("report_by") or {}).items())
        rule = "（预案规则）" if d.get("rule") is not None else ""
        return f"{d.get('reason', '')}{rule}；召集 {names(d.get('departments'))} 报到：{due}"
    if e.type == "task_overdue":
        deadline = str(d.get("deadline"))
        return (f"未在 {stamp(_time(d.get('due')), review)} 前"
                f"{DEADLINE_NAMES.get(deadline, deadline)}")
    if e.type == "escalated":
        cause = str(d.get("cause", ""))
        text = CAUSE_NAMES.get(cause, cause)
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
        reason = str(d.get("reason", ""))
        reason = CLOSE_REASONS.get(reason, reason)
        return "：".join(filter(None, (reason, why_zh(d.get("why")))))
    if e.type == "incident_contained":
        return "险情已得到控制" + (f"：{d['note']}" if d.get("note") else "")
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
