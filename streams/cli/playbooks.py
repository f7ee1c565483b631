"""`whistle playbooks ...`: check, explain, test (a dry run with a fixed clock), reload, schema.

    whistle playbooks check [DIR]                 every problem as file:line: message, exit 1
    whistle playbooks explain ALARM.json          the winner, and why each other playbook lost
    whistle playbooks test ALARMS.json            replay through triage and matching, print the plan
    whistle playbooks reload [--url URL]          ask a running worker to reload its directory
    whistle playbooks schema [-o FILE]            the JSON Schema of a playbook file
    whistle playbooks bench [--sizes 10,...]      median match time per alarm vs set size
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from agents.logic.correlation import SiteState, decide, hazard_of
from agents.logic.incidents import facts_of, on_triaged
from agents.logic.locate import Registry, registry_from, resolve
from playbooks import LIBRARY, PlaybookError, PlaybookSet, load_playbooks
from playbooks.departments import DEPARTMENTS, load_departments
from playbooks.match import explain
from schemas import Alarm, Evidence, Incident, Playbook, Site, Task, Triaged, parse_duration
from schemas.codec import error_details, summarize
from schemas.common import format_duration
from schemas.registry import RegistryError, read_registry
from streams.settings import DEMO_SITES

__all__ = ["add_parser", "schema"]

_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def schema() -> dict[str, Any]:
    """The JSON Schema editors use to complete and check playbook files."""
    doc = Playbook.model_json_schema(mode="validation")
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["$id"] = "https://whistle.example/schemas/playbook.schema.json"
    return doc


def _load(args: argparse.Namespace) -> PlaybookSet:
    departments = load_departments(args.departments).by_id()
    try:
        return load_playbooks(args.playbooks, departments)
    except PlaybookError as exc:
        raise SystemExit(f"the playbooks in {args.playbooks} are refused:\n{exc}") from None


def _alarms(path: Path) -> list[Alarm]:
    data = json.loads(path.read_text(encoding="utf-8"))
    items = data if isinstance(data, list) else [data]
    alarms = []
    for i, item in enumerate(items):
        try:  # recorded alarms are replayed at their own time: no "in the future" limit
            alarms.append(Alarm.model_validate(item, context={"now": _END_OF_TIME}))
        except ValidationError as exc:
            raise SystemExit(f"{path}: alarm {i}: {summarize(error_details(exc))}") from None
    return alarms


def _registry(path: Path) -> Registry:
    try:
        return registry_from(read_registry(path))
    except RegistryError as exc:
        raise SystemExit(f"the registry {path} is refused:\n{exc}") from None


def _site(registry: Registry, alarm: Alarm) -> Site:
    return resolve(alarm, registry).site


def cmd_check(args: argparse.Namespace) -> int:
    departments = load_departments(args.departments).by_id()
    try:
        pset = load_playbooks(args.dir, departments)
    except PlaybookError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) in {args.dir}", file=sys.stderr)
        return 1
    print(f"{len(pset.playbooks)} playbooks in {args.dir} are valid (set {pset.digest}; "
          f"fallback: {pset.fallback.playbook.id})")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    pset, sites = _load(args), _registry(args.sites)
    for alarm in _alarms(args.alarm):
        site = _site(sites, alarm)
        print(f"alarm {alarm.alarm_id}: kind={alarm.kind} signal={alarm.signal} "
              f"site={site.site_id} ({site.type}, grid {site.grid or '-'}) "
              f"at {alarm.occurred_at.isoformat()}")
        for c in explain(pset, facts_of(alarm, site)):
            mark = "WINNER" if c.won else "lost  "
            pb = c.playbook.playbook
            print(f"  {mark} {pb.id} v{pb.version} ({c.playbook.source}): {c.why}")
    return 0


def _task_line(task: Task, opened: Any) -> str:
    ack = task.ack_due - opened
    done = task.complete_due - opened
    unit = f" [{task.unit}]" if task.unit else ""
    return (f"    {task.task_id}  {task.department}{unit}: {task.action}  "
            f"(ack {_short(ack)}, complete {_short(done)})")


def _short(delta: timedelta) -> str:
    return format_duration(delta)


def cmd_test(args: argparse.Namespace) -> int:
    """Replay recorded alarms through triage and matching, each at its own occurred_at."""
    pset, sites = _load(args), _registry(args.sites)
    window = parse_duration(args.window)
    states: dict[str, SiteState] = {}
    seen: dict[str, str | None] = {}
    incidents: dict[str, Incident] = {}
    tasks: dict[str, list[Task]] = {}
    plan: list[dict] = []

    def tasks_of(incident_id: str) -> Callable[[], list[Task]]:
        return lambda: tasks.get(incident_id, [])

    for alarm in sorted(_alarms(args.alarms), key=lambda a: a.occurred_at):
        site = _site(sites, alarm)
        d = decide(alarm, states.setdefault(site.site_id, SiteState()),
                   seen.get(alarm.alarm_id, False), window, site=site.site_id)
        if d.action == "duplicate":
            print(f"{alarm.alarm_id}: duplicate of an alarm on {d.incident_id}")
            continue
        if d.action == "record" or d.incident_id is None:
            print(f"{alarm.alarm_id}: {alarm.signal} recorded on device {alarm.device_id}")
            continue
        seen[alarm.alarm_id] = d.incident_id
        current = incidents.get(d.incident_id)
        step = on_triaged(current, Triaged(
            alarm=alarm, incident_id=d.incident_id, action=d.action, hazard=hazard_of(alarm.kind),
            family=d.family, merges=list(d.merges), evidence=d.evidence or Evidence(), site=site),
            pset, pset.by_id.get(current.playbook.id) if current else None,
            tasks_of(d.incident_id), alarm.occurred_at)
        incidents[d.incident_id] = inc = step.incident
        tasks.setdefault(d.incident_id, []).extend(step.new_tasks)
        if not d.opens:
            news = "; confirmed: " + (inc.confirmed_by or "") if any(
                e.type == "incident_confirmed" for e in step.entries) else ""
            print(f"{alarm.alarm_id}: {d.action}s {d.incident_id}{news}")
            for task in step.new_tasks:
                print(_task_line(task, inc.opened_at))
            continue
        print(f"{alarm.alarm_id}: opens {inc.incident_id} at {site.site_id} ({site.name}), "
              f"level {inc.level}, playbook {inc.playbook.id} v{inc.playbook.version}, "
              f"{inc.confirmation}")
        for task in step.new_tasks:
            print(_task_line(task, inc.opened_at))
        waiting = [s.id for s in pset.by_id[inc.playbook.id].playbook.steps
                   if s.id not in {t.step for t in step.new_tasks}]
        if waiting:
            print(f"    later (after other steps, confirmation or a higher level): "
                  f"{', '.join(waiting)}")
        plan.append({"incident": inc.model_dump(mode="json"),
                     "tasks": [t.model_dump(mode="json") for t in step.new_tasks],
                     "waiting": waiting})
    if args.json:
        args.json.write_text(json.dumps(plan, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    try:
        answer = httpx.post(f"{args.url.rstrip('/')}/api/v1/playbooks/reload", timeout=15)
    except httpx.HTTPError as exc:
        print(f"whistle playbooks reload: {args.url} did not answer: {exc}", file=sys.stderr)
        return 2
    body = answer.json()
    if answer.status_code != 200:
        for d in body.get("details", []):
            print(f"{d['loc'][0]}:{d['loc'][1]}: {d['msg']}")
        print(body.get("error", answer.text), file=sys.stderr)
        return 1
    print(f"reloaded: set {body['digest']}, {len(body['playbooks'])} playbooks")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    text = json.dumps(schema(), ensure_ascii=False, indent=2) + "\n"
    if args.o:
        Path(args.o).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from playbooks.bench import run

    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"playbook matching, {args.alarms} random alarms per set (median/p99/mean per alarm)")
    print(f"{'playbooks':>10} {'median':>10} {'p99':>10} {'mean':>10} {'fallback':>9} {'load':>8}")
    rows = run(sizes, args.alarms)
    for r in rows:
        print(f"{r['playbooks']:>10} {r['median_us']:>8.1f}us {r['p99_us']:>8.1f}us "
              f"{r['mean_us']:>8.1f}us {r['fallback_share']:>8.0%} {r['load_s']:>7.2f}s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


def add_parser(sub: Any, default_url: str) -> None:
    p = sub.add_parser("playbooks", help="check, explain, test, reload playbooks")
    commands = p.add_subparsers(dest="playbooks_command", required=True)

    def with_files(q: argparse.ArgumentParser) -> None:
        q.add_argument("--playbooks", type=Path, default=LIBRARY)
        q.add_argument("--departments", type=Path, default=DEPARTMENTS)

    check = commands.add_parser("check", help="validate a directory of playbooks")
    check.add_argument("dir", nargs="?", type=Path, default=LIBRARY)
    check.add_argument("--departments", type=Path, default=DEPARTMENTS)
    check.set_defaults(func=cmd_check)

    exp = commands.add_parser("explain", help="which playbook an alarm gets, and why")
    exp.add_argument("alarm", type=Path, help="a JSON file: one alarm or an array")
    exp.add_argument("--sites", type=Path, default=DEMO_SITES)
    with_files(exp)
    exp.set_defaults(func=cmd_explain)

    test = commands.add_parser("test", help="dry run: recorded alarms -> incidents and tasks")
    test.add_argument("alarms", type=Path, help="a JSON file of recorded alarms")
    test.add_argument("--sites", type=Path, default=DEMO_SITES)
    test.add_argument("--window", default="10m", help="correlation window (default 10m)")
    test.add_argument("--json", type=Path, help="also write the plan as JSON to this file")
    with_files(test)
    test.set_defaults(func=cmd_test)

    rel = commands.add_parser("reload", help="make a running worker reload its playbooks")
    rel.add_argument("--url", default=default_url)
    rel.set_defaults(func=cmd_reload)

    bench = commands.add_parser("bench", help="median match time per alarm vs set size")
    bench.add_argument("--sizes", default="10,100,1000,10000")
    bench.add_argument("--alarms", type=int, default=20_000)
    bench.add_argument("--json", type=Path, help="also write the figures as JSON")
    bench.set_defaults(func=cmd_bench)

    sch = commands.add_parser("schema", help="print (or -o write) the playbook JSON Schema")
    sch.add_argument("-o", help="write to this file")
    sch.set_defaults(func=cmd_schema)
