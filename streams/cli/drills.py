"""`whistle drill SITE`: run a playbook as an exercise (演练) on a running Whistle (an admin
token: --token or WHISTLE_TOKEN). The real pipeline runs; every task says 演练, nobody who
reported is told, and the period report keeps it apart. Its after-action report
(`GET /api/v1/incidents/{id}/timeline?format=html`) scores each department.

    whistle drill jyh-yinfeng-lab-3 --playbook laboratory-fire --description "3号实验室冒烟"

Exit 0 when it started, 1 when refused (the answer is printed), 2 when nothing answered.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from schemas import LEVELS
from streams.cli.client import add_connection, call

__all__ = ["add_parser"]


def cmd_drill(args: argparse.Namespace) -> int:
    body = {"site_id": args.site_id, "kind": args.kind,
            **{k: v for k, v in (("playbook", args.playbook), ("level", args.level),
                                 ("description", args.description), ("by", args.by)) if v}}
    answer = call(args, "whistle drill", "POST", "/api/v1/drills", json=body)
    if isinstance(answer, int):
        return answer
    incident = answer.json()
    if args.json:
        print(json.dumps(incident, ensure_ascii=False, indent=2))
    elif incident.get("incident_id"):
        print(f"演练 {incident['incident_id']}: {incident['playbook']['id']} at "
              f"{incident['site_id']}, level {incident['level']}, "
              f"{len(incident['task_ids'])} task(s) dispatched")
    else:  # 202: taken, the incident is being opened by the worker that holds it
        print(f"演练 accepted as alarm {incident['alarm_id']}; its incident opens shortly")
    return 0


def add_parser(sub: Any, default_url: str) -> None:
    """`whistle drill SITE [--playbook ID] [--kind K] [--level L] [--description TEXT]`."""
    drill = sub.add_parser("drill", help="run a playbook as an exercise (演练) on a site")
    drill.add_argument("site_id", help="a registered site")
    drill.add_argument("--playbook", help="the plan to practise (default: matched as an "
                       "alarm of --kind at the site would be)")
    drill.add_argument("--kind", default="fire_report", help="the alarm kind (default "
                       "fire_report)")
    drill.add_argument("--level", choices=LEVELS, help="default: the playbook's")
    drill.add_argument("--description", help="the scenario (演练脚本) the tasks will read")
    drill.add_argument("--json", action="store_true", help="the API's JSON answer")
    drill.add_argument("--by", help="who, when the token names nobody")
    add_connection(drill, default_url, "an admin's bearer token")
    drill.set_defaults(func=cmd_drill)
