"""`whistle campaign ...`: joint campaigns (专项整治) on a running Whistle, and a check of the
campaign playbooks on disk. An admin token starts and ends; a department token records its own
findings (--token or WHISTLE_TOKEN; --url or WHISTLE_URL).

    whistle campaign start gas-safety [--id cmp-gas-2026] [--json]
    whistle campaign list [--json]
    whistle campaign show CAMPAIGN_ID [--json]
    whistle campaign finding CAMPAIGN_ID --site S --department D --outcome fined [--task T]
                             [--note N]
    whistle campaign end CAMPAIGN_ID [--json]
    whistle campaign report CAMPAIGN_ID [--format html|csv|md] [-o FILE]
    whistle campaign check [DIR] [--departments FILE]    file:line: message for each problem

Exit 0 when done, 1 when refused (the error and each field at fault are printed, or a
problem of a file), 2 when nothing answered.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from playbooks import PlaybookError
from playbooks.campaigns import CAMPAIGNS, load_campaigns
from playbooks.departments import DEPARTMENTS, load_departments
from schemas.campaign import CAMPAIGN_OUTCOMES
from streams.cli.client import add_connection, call

__all__ = ["add_parser"]


def _call(args: argparse.Namespace, method: str, path: str, **kw: Any) -> httpx.Response | int:
    return call(args, "whistle campaign", method, path, **kw)


def _printed(args: argparse.Namespace, answer: httpx.Response | int,
             text: Any = None) -> int:
    if isinstance(answer, int):
        return answer
    body = answer.json()
    print(text(body) if text is not None and not getattr(args, "json", False)
          else json.dumps(body, ensure_ascii=False, indent=2))
    return 0


def _line(c: dict) -> str:
    return (f"{c['campaign_id']}  {c['status']:<7} {c['title']}  {c['done']}/{c['tasks']} "
            f"tasks done, {c['sites_done']}/{c['sites']} sites, {c['overdue']} overdue")


def _listed(body: dict) -> str:
    return "\n".join(_line(c) for c in body["campaigns"]) or "no campaigns"


def _shown(body: dict) -> str:
    c, p = body["campaign"], body["progress"]
    rows = [f"{c['campaign_id']}  {c['title']} ({c['playbook']['id']} v{c['playbook']['version']})"
            f"  {c['status']}, started {c['started_at']} by {c['started_by']}",
            f"{p['sites']} sites ({p['sites_done']} done), {p['tasks']} tasks: {p['done']} done, "
            f"{p['overdue']} overdue; " + ", ".join(f"{o} {p['outcomes'][o]}"
                                                   for o in CAMPAIGN_OUTCOMES)]
    rows += [f"  {d['department']:<20} {d['done']}/{d['tasks']} done, {d['overdue']} overdue"
             for d in p["departments"]]
    rows += [f"  grid {g['grid'] or '-':<15} {g['sites_done']}/{g['sites']} sites, "
             f"{g['done']}/{g['tasks']} tasks, {g['overdue']} overdue" for g in p["grids"]]
    return "\n".join(rows)


def _id(args: argparse.Namespace) -> str:
    return quote(args.campaign_id, safe="")


def _by(args: argparse.Namespace) -> dict:
    return {"by": args.by} if args.by else {}


def cmd_start(args: argparse.Namespace) -> int:
    body = {"playbook": args.playbook, **({"campaign_id": args.id} if args.id else {}),
            **_by(args)}
    return _printed(args, _call(args, "POST", "/api/v1/campaigns", json=body), _shown)


def cmd_list(args: argparse.Namespace) -> int:
    return _printed(args, _call(args, "GET", "/api/v1/campaigns"), _listed)


def cmd_show(args: argparse.Namespace) -> int:
    return _printed(args, _call(args, "GET", f"/api/v1/campaigns/{_id(args)}"), _shown)


def cmd_finding(args: argparse.Namespace) -> int:
    body = {"site_id": args.site, "department": args.department, "outcome": args.outcome,
            **({"task_id": args.task} if args.task else {}),
            **({"note": args.note} if args.note else {}), **_by(args)}
    return _printed(args, _call(args, "POST", f"/api/v1/campaigns/{_id(args)}/findings",
                                json=body))


def cmd_end(args: argparse.Namespace) -> int:
    return _printed(args, _call(args, "POST", f"/api/v1/campaigns/{_id(args)}/end",
                                json=_by(args)), _shown)


def cmd_report(args: argparse.Namespace) -> int:
    answer = _call(args, "GET", f"/api/v1/campaigns/{_id(args)}/report",
                   params={"format": args.format})
    if isinstance(answer, int):
        return answer
    if args.output is None:
        sys.stdout.buffer.write(answer.content)
        sys.stdout.buffer.flush()
    else:
        args.output.write_bytes(answer.content)
        print(f"{args.output}: {len(answer.content)} bytes", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    departments = load_departments(args.departments).by_id()
    try:
        found = load_campaigns(args.dir, departments)
    except PlaybookError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) in {args.dir}", file=sys.stderr)
        return 1
    print(f"{len(found)} campaign playbooks in {args.dir} are valid: {', '.join(sorted(found))}")
    return 0


def add_parser(sub: Any, default_url: str) -> None:
    """`whistle campaign start|list|show|finding|end|report|check`."""
    campaign = sub.add_parser("campaign", help="joint campaigns (专项整治): start, findings, "
                              "progress, report")
    commands = campaign.add_subparsers(dest="campaign_command", required=True)
    start = commands.add_parser("start", help="start a campaign playbook on its target sites")
    start.add_argument("playbook", help="a campaign playbook id, e.g. gas-safety")
    start.add_argument("--id", help="the campaign's id (default cmp-<playbook>-<date>)")
    start.set_defaults(func=cmd_start)
    listed = commands.add_parser("list", help="the campaigns, newest first, with their totals")
    listed.set_defaults(func=cmd_list)
    show = commands.add_parser("show", help="a campaign's progress per department and grid")
    show.add_argument("campaign_id")
    show.set_defaults(func=cmd_show)
    finding = commands.add_parser("finding", help="what a department found at a site")
    finding.add_argument("campaign_id")
    finding.add_argument("--site", required=True, help="the site id")
    finding.add_argument("--department", required=True, help="the department id")
    finding.add_argument("--outcome", required=True, choices=CAMPAIGN_OUTCOMES,
                         help="合格, 责令整改, 罚款 or 关停取缔")
    finding.add_argument("--task", help="the task id, when the department has several steps")
    finding.add_argument("--note", help="what was found (检查情况)")
    finding.set_defaults(func=cmd_finding)
    end = commands.add_parser("end", help="end a campaign: no finding is taken after")
    end.add_argument("campaign_id")
    end.set_defaults(func=cmd_end)
    report = commands.add_parser("report", help="the campaign report (专项整治工作报告)")
    report.add_argument("campaign_id")
    report.add_argument("--format", default="html", choices=("html", "csv", "md"))
    report.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    report.set_defaults(func=cmd_report)
    for command in (start, listed, show, finding, end, report):
        add_connection(command, default_url, "a bearer token")
    for command in (start, finding, end):
        command.add_argument("--by", help="who, when the token names nobody")
    for command in (start, listed, show, end):  # a finding always prints the site's JSON
        command.add_argument("--json", action="store_true", help="the API's JSON answer")
    check = commands.add_parser("check", help="validate a directory of campaign playbooks")
    check.add_argument("dir", nargs="?", type=Path, default=CAMPAIGNS)
    check.add_argument("--departments", type=Path, default=DEPARTMENTS)
    check.set_defaults(func=cmd_check)
