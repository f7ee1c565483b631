"""Turn a matched playbook into tasks: deterministic ids, deadlines from the playbook, steps
added as they become ready.

A step is ready when it has no task yet, its `when` holds (confirmed, level) and every step in
its `after` is completed. `plan_tasks` is called whenever one of those can have changed: the
incident opens, is confirmed, changes level, or a task completes. A step is never planned twice
because its task id is `f"{incident_id}.{step_id}"` and planned steps are skipped.

    >>> [t.step for t in plan_tasks(incident, playbook, site, now)]
    ['fire_brigade', 'lead', 'cordon', 'isolate_power', 'investigate']
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from schemas import LEVELS, Incident, Playbook, PlaybookStep, Site, Task

__all__ = ["plan_tasks", "ready_steps", "task_id_for", "unit_for"]


def task_id_for(incident_id: str, step_id: str) -> str:
    """The one id a step of an incident ever gets."""
    return f"{incident_id}.{step_id}"


def _level_reached(level: str, at_least: str | None) -> bool:
    return at_least is None or LEVELS.index(level) <= LEVELS.index(at_least)


def ready_steps(playbook: Playbook, *, level: str, confirmed: bool,
                planned: Collection[str] = (),
                completed: Collection[str] = ()) -> list[PlaybookStep]:
    """The steps to dispatch now, in playbook order. While an incident is unconfirmed only the
    playbook's verification goes out (and steps with `when: {confirmed: false}`)."""
    holds = playbook.confirm is not None

    def waits(step: PlaybookStep) -> bool:
        return step.when.confirmed if step.when.confirmed is not None else holds

    verify = [playbook.confirm.verify] if playbook.confirm is not None and not confirmed else []
    return [s for s in [*verify, *(s for s in playbook.steps if confirmed or not waits(s))]
            if s.id not in planned
            and _level_reached(level, s.when.level_at_least)
            and all(dep in completed for dep in s.after)]


def unit_for(step: PlaybookStep, site: Site) -> str | None:
    """Which unit covers the site: the step's per-site unit, then the site registry's override,
    then the step's per-grid unit."""
    override = site.overrides.get(step.department)
    return (step.units.by_site.get(site.site_id)
            or (override.unit if override else None)
            or step.units.by_grid.get(site.grid))


def plan_tasks(incident: Incident, playbook: Playbook, site: Site, now: datetime, *,
               planned: Collection[str] = (), completed: Collection[str] = ()) -> list[Task]:
    """A dispatched task, due from `now`, for every step that is ready and not yet planned."""
    return [
        Task(task_id=task_id_for(incident.incident_id, step.id),
             incident_id=incident.incident_id, department=step.department, step=step.id,
             action=step.action, status="dispatched", ack_due=now + step.ack_within,
             complete_due=now + step.complete_within, created_at=now, updated_at=now,
             site_id=incident.site_id, level=incident.level, drill=incident.drill,
             unit=unit_for(step, site),
             site_name=site.name, address=site.address or "",
             verification=playbook.confirm is not None and step is playbook.confirm.verify)
        for step in ready_steps(playbook, level=incident.level, confirmed=incident.confirmed,
                                planned=planned, completed=completed)
    ]
