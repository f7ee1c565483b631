"""Joint campaigns (专项整治 / 联合执法), pure: which sites a campaign covers, the tasks its start
creates (one per step at every target site), a department's finding at a site, the end, and
how far it is. Time is passed in; nothing here reads a clock, a file or a topic.

    >>> campaign, sites = start(loaded, campaign_id_for("gas-safety", now), registry, "王科长", now)
    >>> sites[0] = record(sites[0], finding)
    >>> progress(campaign, sites, now).done
    1

Task ids are `<campaign_id>.<site_id>.<n>`, n the step's place in the playbook from 1, so the
same start (a replayed record) gives the same tasks. A task is due `within` after the start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from playbooks.campaigns import LoadedCampaign
from schemas.campaign import (
    CAMPAIGN_OUTCOMES,
    Campaign,
    CampaignCommand,
    CampaignEnd,
    CampaignFinding,
    CampaignOutcome,
    CampaignPlaybook,
    CampaignProgress,
    CampaignSite,
    CampaignStatus,
    CampaignTargets,
    CampaignTask,
    DepartmentProgress,
    GridProgress,
)
from schemas.incident import PlaybookRef
from schemas.site import Site

__all__ = ["CampaignError", "TRANSITIONS", "campaign_id_for", "check", "end", "is_target",
           "progress", "record", "start", "targets", "task_id_for"]

_CHINA = timezone(timedelta(hours=8))

TRANSITIONS: dict[tuple[CampaignStatus, str], CampaignStatus] = {
    ("running", "finding"): "running",
    ("running", "end"): "ended",
}
"""What a record does to a campaign in each status; any other pair is refused (`check`). A
start is no transition: it makes the campaign, and a second start of one id is refused by
whoever keeps the campaigns."""


class CampaignError(ValueError):
    """A campaign record or request that cannot be applied: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def is_target(rule: CampaignTargets, site: Site) -> bool:
    """Listed by id, or (when types or grids are given) of one of the types in one of the
    grids, an empty list meaning any."""
    if site.site_id in rule.sites:
        return True
    if not (rule.types or rule.grids):
        return False
    return (not rule.types or site.type in rule.types) and (not rule.grids or
                                                            site.grid in rule.grids)


def targets(playbook: CampaignPlaybook, sites: Iterable[Site]) -> list[Site]:
    """The registered sites the campaign covers, in registry order, each once."""
    seen: set[str] = set()
    found = []
    for site in sites:
        if site.site_id not in seen and is_target(playbook.targets, site):
            seen.add(site.site_id)
            found.append(site)
    return found


def campaign_id_for(playbook_id: str, at: datetime) -> str:
    """The default id of a campaign started at `at`: `cmp-<playbook>-<China date>`."""
    return f"cmp-{playbook_id}-{at.astimezone(_CHINA):%Y%m%d}"


def task_id_for(campaign_id: str, site_id: str, n: int) -> str:
    """The id of step `n` (from 1) of a campaign at a site."""
    return f"{campaign_id}.{site_id}.{n}"


def start(loaded: LoadedCampaign, campaign_id: str, sites: Iterable[Site], by: str,
          at: datetime) -> tuple[Campaign, list[CampaignSite]]:
    """The campaign and one record per target site, each with a task per step due `within`
    after `at`. `sites` is the registry; raise CampaignError when no site of it is a target."""
    playbook = loaded.playbook
    chosen = targets(playbook, sites)
    if not chosen:
        raise CampaignError("targets", "the campaign names no registered site")
    registered = {s.site_id for s in chosen}
    campaign = Campaign(
        campaign_id=campaign_id,
        playbook=PlaybookRef(id=playbook.id, version=playbook.version,
                             content_hash=loaded.content_hash),
        title=playbook.title, status="running", started_at=at, started_by=by,
        sites=[s.site_id for s in chosen], steps=list(playbook.steps),
        unregistered=[s for s in dict.fromkeys(playbook.targets.sites) if s not in registered])
    records = [CampaignSite(
        campaign_id=campaign_id, site_id=site.site_id, site_name=site.name, grid=site.grid,
        tasks=[CampaignTask(task_id=task_id_for(campaign_id, site.site_id, n),
                            department=step.department, action=step.action,
                            due=at + step.within)
               for n, step in enumerate(playbook.steps, start=1)])
        for site in chosen]
    return campaign, records


def check(campaign: Campaign, command: CampaignCommand) -> CampaignStatus:
    """The campaign's status after `command`, or CampaignError naming the field."""
    if command.campaign_id != campaign.campaign_id:
        raise CampaignError("campaign_id", f"the record is for {command.campaign_id!r}, not "
                                           f"{campaign.campaign_id!r}")
    after = TRANSITIONS.get((campaign.status, command.type))
    if after is None:
        raise CampaignError("campaign_id", f"campaign {campaign.campaign_id!r} exists already"
                            if command.type == "start" else
                            f"campaign {campaign.campaign_id!r} has ended: it takes no "
                            f"{command.type}")
    return after


def record(site: CampaignSite, finding: CampaignFinding) -> CampaignSite:
    """The site with the finding on the task of that department (`finding.task_id` picks one
    when the department has several); it replaces an earlier finding on that task."""
    if finding.campaign_id != site.campaign_id or finding.site_id != site.site_id:
        raise CampaignError("site_id", f"{finding.site_id!r} of {finding.campaign_id!r} is not "
                                       f"this record's site")
    mine = [t for t in site.tasks if t.department == finding.department]
    if not mine:
        raise CampaignError("department", f"{finding.department!r} has no task at "
                                          f"{site.site_id!r} in this campaign")
    if finding.task_id is not None:
        mine = [t for t in mine if t.task_id == finding.task_id]
        if not mine:
            raise CampaignError("task_id", f"{finding.task_id!r} is no task of "
                                           f"{finding.department!r} at {site.site_id!r}")
    elif len(mine) > 1:
        raise CampaignError("task_id", f"{finding.department!r} has {len(mine)} tasks at "
                                       f"{site.site_id!r}: name one of "
                                       f"{', '.join(t.task_id for t in mine)}")
    chosen = mine[0].task_id
    done = [t.model_copy(update={"outcome": finding.outcome, "by": finding.by,
                                 "at": finding.at, "note": finding.note or None,
                                 "last_update_id": finding.update_id})
            if t.task_id == chosen else t for t in site.tasks]
    return site.model_copy(update={"tasks": done})


def end(campaign: Campaign, command: CampaignEnd) -> Campaign:
    """The campaign ended by `command`; CampaignError if it has ended already."""
    status = check(campaign, command)
    return campaign.model_copy(update={"status": status, "ended_at": command.at,
                                       "ended_by": command.by})


def _outcomes(counter: Counter[str]) -> dict[CampaignOutcome, int]:
    return {o: counter[o] for o in CAMPAIGN_OUTCOMES}


def progress(campaign: Campaign, sites: Iterable[CampaignSite], now: datetime) -> CampaignProgress:
    """Tasks, done and overdue (no finding, past due) in all, per department (in the order
    of the steps) and per grid (sorted). An ended campaign is counted as at its end."""
    if campaign.ended_at is not None:
        now = min(now, campaign.ended_at)
    order = list(dict.fromkeys(step.department for step in campaign.steps))
    tally: dict[str, Counter[str]] = {d: Counter() for d in order}
    grids: dict[str, Counter[str]] = {}
    total: Counter[str] = Counter()
    for site in sites:
        if site.campaign_id != campaign.campaign_id:
            raise CampaignError("campaign_id", f"site record {site.site_id!r} belongs to "
                                               f"{site.campaign_id!r}")
        grid = grids.setdefault(site.grid, Counter())
        grid["sites"] += 1
        grid["sites_done"] += all(t.outcome is not None for t in site.tasks)
        for task in site.tasks:
            late = task.outcome is None and task.due < now
            for counter in (tally.setdefault(task.department, Counter()), grid, total):
                counter["tasks"] += 1
                counter["done"] += task.outcome is not None
                counter["overdue"] += late
                if task.outcome is not None:
                    counter[task.outcome] += 1
        total["sites"] += 1
        total["sites_done"] += all(t.outcome is not None for t in site.tasks)
    return CampaignProgress(
        campaign_id=campaign.campaign_id, status=campaign.status, at=now,
        sites=total["sites"], sites_done=total["sites_done"], tasks=total["tasks"],
        done=total["done"], overdue=total["overdue"], outcomes=_outcomes(total),
        departments=[DepartmentProgress(department=d, tasks=c["tasks"], done=c["done"],
                                        overdue=c["overdue"], outcomes=_outcomes(c))
                     for d, c in tally.items()],
        grids=[GridProgress(grid=g, sites=c["sites"], sites_done=c["sites_done"],
                            tasks=c["tasks"], done=c["done"], overdue=c["overdue"])
               for g, c in sorted(grids.items())])
