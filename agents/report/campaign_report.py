"""A joint campaign's report (专项整治工作报告), pure: a CSV Excel opens (UTF-8 with a BOM, a row
per site and task), Markdown, and one printable HTML page (`templates/campaign.html.j2`,
autoescaped, so every site name and note is escaped and nothing is marked safe).

    >>> campaign_csv(campaign, sites, names, now)[:3] == b"\\xef\\xbb\\xbf"
    True
    >>> "燃气安全专项整治" in campaign_html(campaign, sites, names, now)
    True

Times are Beijing time. A task without a finding is 未检查, or 已超期 once its deadline passed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from agents.logic.campaigns import progress
from agents.report.render import csv_cell, md_cell
from agents.report.report_html import template
from agents.report.review import LOCAL
from schemas.campaign import CAMPAIGN_OUTCOMES, Campaign, CampaignSite, CampaignTask

__all__ = ["CSV_HEADER", "NOT_CHECKED", "NO_GRID", "OUTCOME_LABELS", "OVERDUE", "Cell",
           "SiteRow", "campaign_csv", "campaign_html", "campaign_markdown", "campaign_rows",
           "state_of"]

OUTCOME_LABELS = {"compliant": "合格", "rectification_ordered": "责令整改", "fined": "罚款",
                  "closed": "关停取缔"}
NOT_CHECKED = "未检查"
OVERDUE = "已超期"
NO_GRID = "（未划网格）"
STATUS_LABELS = {"running": "进行中", "ended": "已结束"}
CSV_HEADER = ["场所编号", "场所", "网格", "部门", "任务", "期限", "结果", "检查人", "时间",
              "备注"]


def _stamp(at: datetime | None) -> str:
    return "" if at is None else f"{at.astimezone(LOCAL):%Y-%m-%d %H:%M}"


def state_of(task: CampaignTask, now: datetime) -> tuple[str, str]:
    """(key, label) of a task: its outcome, else `overdue` past its due, else `open`."""
    if task.outcome is not None:
        return task.outcome, OUTCOME_LABELS[task.outcome]
    return ("overdue", OVERDUE) if task.due < now else ("open", NOT_CHECKED)


def _ordered(campaign: Campaign, sites: Iterable[CampaignSite]) -> list[CampaignSite]:
    """The site records in the campaign's order (the registry's at the start)."""
    place = {site_id: i for i, site_id in enumerate(campaign.sites)}
    return sorted(sites, key=lambda s: (place.get(s.site_id, len(place)), s.site_id))


def _now(campaign: Campaign, now: datetime) -> datetime:
    return min(now, campaign.ended_at) if campaign.ended_at is not None else now


def campaign_rows(campaign: Campaign, sites: Iterable[CampaignSite],
                  department_names: Mapping[str, str], now: datetime) -> list[list[str]]:
    """A row of text cells (CSV_HEADER's columns) per site and task."""
    now = _now(campaign, now)
    return [[site.site_id, site.site_name, site.grid, department_names.get(t.department,
                                                                           t.department),
             t.action, _stamp(t.due), state_of(t, now)[1], t.by or "", _stamp(t.at), t.note or ""]
            for site in _ordered(campaign, sites) for t in site.tasks]


def campaign_csv(campaign: Campaign, sites: Iterable[CampaignSite],
                 department_names: Mapping[str, str], now: datetime) -> bytes:
    """UTF-8 with a BOM (so Excel reads the Chinese), RFC 4180 quoting, a row per site and
    task; a cell a spreadsheet would run as a formula starts with an apostrophe."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in campaign_rows(campaign, sites, department_names, now):
        writer.writerow([csv_cell(c) for c in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


@dataclass(frozen=True)
class Cell:
    """A task in the sites table: its state's key (a CSS class) and label, and a tooltip with
    who found it when and the note: `Cell("fined", "罚款", "李队 2023-05-20 10:00")`."""

    key: str
    label: str
    tip: str


@dataclass(frozen=True)
class SiteRow:
    """A site of the sites table, a cell per step."""

    site_id: str
    name: str
    grid: str
    done: bool
    cells: list[Cell]


def _site_rows(campaign: Campaign, sites: Iterable[CampaignSite], now: datetime) -> list[SiteRow]:
    rows = []
    for site in _ordered(campaign, sites):
        cells = []
        for t in site.tasks:
            key, label = state_of(t, now)
            tip = " ".join(p for p in (t.by or "", _stamp(t.at), t.note or "") if p) \
                or f"期限 {_stamp(t.due)}"
            cells.append(Cell(key, label, tip))
        rows.append(SiteRow(site.site_id, site.site_name, site.grid or NO_GRID,
                            all(t.outcome is not None for t in site.tasks), cells))
    return rows


def campaign_html(campaign: Campaign, sites: Iterable[CampaignSite],
                  department_names: Mapping[str, str], now: datetime) -> str:
    """The whole page, one self-contained file: header, totals by outcome, progress per
    department and per grid, the steps, and every site's result per step."""
    sites = list(sites)
    now = _now(campaign, now)
    prog = progress(campaign, sites, now)
    names = {d: department_names.get(d, d) for d in
             {s.department for s in campaign.steps} | {d.department for d in prog.departments}}
    totals = [("sites", "场所", prog.sites), ("sites_done", "已完成场所", prog.sites_done),
              ("tasks", "任务", prog.tasks), ("done", "已检查", prog.done),
              *((o, OUTCOME_LABELS[o], prog.outcomes[o]) for o in CAMPAIGN_OUTCOMES),
              ("open", NOT_CHECKED, prog.tasks - prog.done - prog.overdue),
              ("overdue", OVERDUE, prog.overdue)]
    return template("campaign.html.j2").render(
        campaign=campaign, status=STATUS_LABELS[campaign.status],
        started=_stamp(campaign.started_at), ended=_stamp(campaign.ended_at),
        generated=_stamp(now), totals=totals, outcomes=[OUTCOME_LABELS[o] for o in
                                                        CAMPAIGN_OUTCOMES],
        departments=[(d.department, names[d.department], d.tasks, d.done, d.overdue,
                      [d.outcomes[o] for o in CAMPAIGN_OUTCOMES],
                      f"{d.done / d.tasks:.0%}" if d.tasks else "—") for d in prog.departments],
        grids=[(g.grid, g.grid or NO_GRID, g.sites, g.sites_done, g.tasks, g.done, g.overdue)
               for g in prog.grids],
        steps=[(n, names[s.department], s.name or "", s.action,
                _stamp(campaign.started_at + s.within))
               for n, s in enumerate(campaign.steps, start=1)],
        rows=_site_rows(campaign, sites, now))


def campaign_markdown(campaign: Campaign, sites: Iterable[CampaignSite],
                      department_names: Mapping[str, str], now: datetime) -> str:
    """The totals and every site's tasks, for a wiki or a message."""
    sites = list(sites)
    prog = progress(campaign, sites, _now(campaign, now))
    out = [f"# {md_cell(campaign.title)}", "",
           f"方案 {md_cell(campaign.playbook.id)} 第 {md_cell(campaign.playbook.version)} 版 · "
           f"{md_cell(campaign.started_by)} 启动于 {_stamp(campaign.started_at)} · "
           f"{STATUS_LABELS[campaign.status]} · 时间均为北京时间", "",
           "| 场所 | 任务 | 已检查 | " + " | ".join(OUTCOME_LABELS[o] for o in CAMPAIGN_OUTCOMES)
           + f" | {OVERDUE} |", "|---|---|---|" + "---|" * (len(CAMPAIGN_OUTCOMES) + 1),
           f"| {prog.sites} | {prog.tasks} | {prog.done} | "
           + " | ".join(str(prog.outcomes[o]) for o in CAMPAIGN_OUTCOMES) + f" | {prog.overdue} |",
           "", "| " + " | ".join(CSV_HEADER) + " |", "|" + "---|" * len(CSV_HEADER)]
    out += ["| " + " | ".join(md_cell(c) or " " for c in row) + " |"
            for row in campaign_rows(campaign, sites, department_names, now)]
    return "\n".join(out) + "\n"
