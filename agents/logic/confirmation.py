"""Confirmation (pure): when is a fire a fire? GB 50116-2013 4.1.6 and NFPA 72's positive alarm
sequence (PAS), as a playbook's `confirm` configures them.

- A playbook without `confirm`: every incident is confirmed when it opens.
- A person's report (manual call point, fire report) confirms at once: never held back.
- `confirm.detectors` independent detectors (default 2) confirm.
- The verification task: completed with outcome `confirmed` (or none) confirms; `false_alarm`
  closes the incident as a false alarm; rejected confirms (nobody could check: assume fire).
- PAS deadlines: the verification not acknowledged by its `ack_due`, or not completed by its
  `complete_due`, confirms.

    >>> judge(playbook, Evidence(devices=["smk-1"]))
    ('unconfirmed', None)
    >>> judge(playbook, Evidence(devices=["smk-1", "smk-2"]))
    ('confirmed', '2 independent detectors: smk-1, smk-2')
"""

from __future__ import annotations

from datetime import datetime

from schemas import Evidence, Incident, Playbook, Task
from schemas.common import format_duration as say

__all__ = ["judge", "pas_due", "pas_expired", "verdict_of"]


def judge(playbook: Playbook, evidence: Evidence) -> tuple[str, str | None]:
    """("confirmed", why) or ("unconfirmed", None), from what has been seen."""
    if playbook.confirm is None:
        return "confirmed", None
    if evidence.people:
        return "confirmed", "a person reported it (manual call point or fire report)"
    detectors = evidence.devices
    if len(detectors) >= playbook.confirm.detectors:
        return "confirmed", f"{len(detectors)} independent detectors: {', '.join(detectors)}"
    return "unconfirmed", None


def verdict_of(task: Task) -> tuple[str, str] | None:
    """What a finished verification task says: ("confirmed" | "false_alarm", why), or None
    while it is still under way."""
    who = task.by or task.department
    if task.status == "completed":
        if task.outcome == "false_alarm":
            return "false_alarm", f"verified on site by {who}: false alarm"
        return "confirmed", f"verified on site by {who}: fire"
    if task.status == "rejected":
        return "confirmed", f"verification rejected by {who} ({task.note or 'no note'}): " \
                            f"treated as a fire"
    return None


def pas_due(verify: Task) -> datetime | None:
    """The next PAS deadline of a verification task, None once it is finished."""
    if verify.status == "dispatched":
        return verify.ack_due
    if verify.status in ("acknowledged", "in_progress"):
        return verify.complete_due
    return None


def pas_expired(incident: Incident, verify: Task | None, now: datetime) -> str | None:
    """Why the incident is confirmed by the PAS deadlines now, or None."""
    if incident.confirmation != "unconfirmed" or verify is None:
        return None
    if verify.status == "dispatched" and now >= verify.ack_due:
        return (f"verification not acknowledged within "
                f"{say(verify.ack_due - verify.created_at)} (positive alarm sequence)")
    if verify.status in ("dispatched", "acknowledged", "in_progress") \
            and now >= verify.complete_due:
        return (f"verification not completed within "
                f"{say(verify.complete_due - verify.created_at)} (positive alarm sequence)")
    return None
