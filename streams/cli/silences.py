"""`whistle silence ...`: maintenance silences (检修屏蔽) on a running Whistle, like
`amtool silence` (an admin token: --token or WHISTLE_TOKEN).

    whistle silence add --site jyh-yinfeng-lab-3 --duration 2h --reason "烟感年检"
    whistle silence add --grid JYH-G2 --site-type laboratory --until 2026-12-06T18:00:00+08:00 ...
    whistle silence list [--state active|pending|expired]
    whistle silence expire SILENCE_ID

Exit 0 when done, 1 when refused (the answer is printed), 2 when nothing answered.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from schemas import SITE_TYPES, parse_duration, utc_now
from schemas.silence import SILENCE_STATES
from streams.cli.client import add_connection, call

__all__ = ["add_parser"]

_MATCHERS = (("site", "site_id"), ("device", "device_id"), ("grid", "grid"),
             ("site_type", "site_type"))


def _call(args: argparse.Namespace, method: str, path: str, **kw: Any) -> int:
    answer = call(args, "whistle silence", method, path, **kw)
    if isinstance(answer, int):
        return answer
    print(_lines(answer.json()) if args.command_name == "list" and not args.json
          else json.dumps(answer.json(), ensure_ascii=False, indent=2))
    return 0


def _lines(listed: dict) -> str:
    """One silence a line: id, state, until, matchers, who, why (like `amtool silence query`)."""
    rows = [f"{s['silence_id']}  {s['state']:<8} until {s['ends_at']}  "
            f"{','.join(f'{k}={v}' for k, v in s['matchers'].items())}  {s['created_by']}: "
            f"{s['reason']}" for s in listed["silences"]]
    return "\n".join(rows) or "no silences"


def cmd_add(args: argparse.Namespace) -> int:
    matchers = {name: getattr(args, flag) for flag, name in _MATCHERS
                if getattr(args, flag) is not None}
    if not matchers:
        print("whistle silence add: give --site, --device, --grid or --site-type",
              file=sys.stderr)
        return 2
    if args.until:
        end = args.until
    else:
        try:
            end = (utc_now() + parse_duration(args.duration)).isoformat(timespec="seconds")
        except ValueError as exc:
            print(f"whistle silence add: --duration: {exc}", file=sys.stderr)
            return 2
    body = {"matchers": matchers, "ends_at": end, "reason": args.reason,
            **({"starts_at": args.start} if args.start else {}),
            **({"by": args.by} if args.by else {})}
    return _call(args, "POST", "/api/v1/silences", json=body)


def cmd_list(args: argparse.Namespace) -> int:
    return _call(args, "GET", "/api/v1/silences",
                 params={"state": args.state} if args.state else None)


def cmd_expire(args: argparse.Namespace) -> int:
    body = {"by": args.by} if args.by else {}
    return _call(args, "POST", f"/api/v1/silences/{args.silence_id}/expire", json=body)


def add_parser(sub: Any, default_url: str) -> None:
    """`whistle silence add|list|expire`."""
    silence = sub.add_parser("silence", help="maintenance silences (检修屏蔽), like amtool")
    commands = silence.add_subparsers(dest="silence_command", required=True)
    add = commands.add_parser("add", help="silence a site, device, grid or site type (all "
                              "given must match)")
    add.add_argument("--site", help="a site id")
    add.add_argument("--device", help="a device id")
    add.add_argument("--grid", help="a grid (网格)")
    add.add_argument("--site-type", dest="site_type", choices=SITE_TYPES)
    until = add.add_mutually_exclusive_group()
    until.add_argument("--duration", default="2h", help="how long, e.g. 2h, 1h30m (default 2h)")
    until.add_argument("--until", help="when it ends, RFC 3339 with offset")
    add.add_argument("--start", help="when it starts, RFC 3339 with offset (default now)")
    add.add_argument("--reason", required=True, help="why (检修内容)")
    add.set_defaults(func=cmd_add, command_name="add")
    listed = commands.add_parser("list", help="the silences, newest first")
    listed.add_argument("--state", choices=SILENCE_STATES)
    listed.add_argument("--json", action="store_true", help="the API's JSON answer")
    listed.set_defaults(func=cmd_list, command_name="list")
    expire = commands.add_parser("expire", help="end a silence now")
    expire.add_argument("silence_id")
    expire.set_defaults(func=cmd_expire, command_name="expire")
    for command in (add, listed, expire):
        command.add_argument("--by", help="who, when the token names nobody")
        add_connection(command, default_url, "an admin's bearer token")
