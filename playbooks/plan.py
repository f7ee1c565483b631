"""Turn a matched playbook into tasks: deterministic ids, deadlines from the playbook.

    task_id = f"{incident_id}.{step_id}"   # a replay plans the very same ids
"""

from __future__ import annotations

from datetime import datetime

from schemas import Incident, Playbook, Site, Task

__all__ = ["plan_tasks", "task_id_for"]


def task_id_for(incident_id: str, step_id: str) -> str:
    """The one id a step of an incident ever gets."""
    return f"{incident_id}.{step_id}"


def plan_tasks(incident: Incident, playbook: Playbook, site: Site, now: datetime) -> list[Task]:
    """Every step of `playbook` as a dispatched task for `incident`, due from `now`."""
    tasks = []
    for step in playbook.steps:
        override = site.overrides.get(step.department)
        tasks.append(Task(
            task_id=task_id_for(incident.incident_id, step.id),
            incident_id=incident.incident_id,
            department=step.department,
            step=step.id,
            action=step.action,
            status="dispatched",
            ack_due=now + step.ack_within,
            complete_due=now + step.complete_within,
            created_at=now,
            updated_at=now,
            site_id=incident.site_id,
            level=incident.level,
            unit=override.unit if override else None,
        ))
    return tasks
