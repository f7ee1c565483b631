"""Feedback to the people who reported an incident (接诉即办's 反馈), pure: when it closes,
what was done, in words a caller understands.

    >>> feedback_for(incident, tasks, site, names).message[:6]
    '您于11月21日'
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from agents.logic.timelines import entry
from schemas import Feedback, FeedbackItem, Incident, Site, Task, TimelineEntry

__all__ = ["feedback_entry", "feedback_for"]

LOCAL = ZoneInfo("Asia/Shanghai")
_STATUS = {"completed": "已完成", "rejected": "已退回", "in_progress": "处置中",
           "acknowledged": "已接收", "dispatched": "已派发", "cancelled": "已撤销"}
_REASON = {"completed": "已处置完毕", "handled": "已处置完毕",  # closed by hand (结案), handled
           "false_alarm": "经现场核查为误报，已解除"}


def feedback_for(incident: Incident, tasks: list[Task], site: Site,
                 names: dict[str, str]) -> Feedback | None:
    """The feedback for a closed incident that people reported; None if nobody did, if it
    was merged into another incident (which gives the feedback), or if it was a drill (演练:
    nobody real is told of an exercise)."""
    if (incident.status != "closed" or not incident.reporters or incident.drill
            or incident.close_reason not in _REASON or incident.closed_at is None):
        return None
    done = [FeedbackItem(department=t.department, department_name=names.get(t.department,
                                                                            t.department),
                         action=t.action, status=t.status, by=t.by, note=t.note,
                         at=t.updated_at)
            for t in tasks if t.notice_of is None and t.notice_cause is None]
    opened = incident.opened_at.astimezone(LOCAL)
    place = site.name or incident.site_id
    if site.address:
        place += f"（{site.address}）"
    lines = [f"您于{opened.month}月{opened.day}日{opened:%H:%M}反映的{place}的情况"
             f"{_REASON[incident.close_reason]}。"]
    if done and incident.close_reason in ("completed", "handled"):
        lines.append("处置情况：" + "；".join(
            f"{i.department_name}：{i.action}（{_STATUS.get(i.status, i.status)}）"
            for i in done) + "。")
    lines.append("感谢您的报告。")
    return Feedback(feedback_id=f"{incident.incident_id}:feedback:{incident.revision}",
                    incident_id=incident.incident_id, site_id=incident.site_id,
                    site_name=site.name, address=site.address or "",
                    reporters=incident.reporters, alarm_ids=incident.alarm_ids,
                    closed_at=incident.closed_at, close_reason=incident.close_reason,
                    done=done, message="".join(lines))


def feedback_entry(feedback: Feedback) -> TimelineEntry:
    """`reporter_feedback` on the timeline: to whom, and what they are told."""
    return entry(feedback.incident_id, "reporter_feedback", feedback.closed_at, by="whistle",
                 key=feedback.feedback_id,
                 detail={"to": [r.model_dump(exclude_none=True) for r in feedback.reporters],
                         "message": feedback.message})
