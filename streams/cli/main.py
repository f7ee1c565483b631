"""The `whistle` command.

    whistle up [--port 6066] [--broker URL] [--playbooks DIR] [--sites FILE] [--data DIR]
               [--config FILE]          # tokens and webhooks (see schemas/config.py)
    whistle broker [--port 9092] [--data DIR]   # the embedded Apache Kafka node alone
    whistle worker                      # settings from WHISTLE_* environment variables
    whistle send --kind smoke --site jyh-yinfeng-lab-3 [--signal alarm] [--url URL]
    whistle send --file streams/demo/lab-fire.json
    whistle sites import FILE [--broker URL]   # YAML or CSV sites/devices -> whistle.registry
    whistle playbooks check|explain|test|reload|schema   (see streams/cli/playbooks.py)
    whistle silence add|list|expire     # maintenance silences (see streams/cli/silences.py)
    whistle campaign start|list|show|finding|end|report|check   # joint campaigns (专项整治)
    whistle drill SITE [--playbook ID]  # run a playbook as an exercise (演练)
    whistle timeline INCIDENT_ID --format json|csv|md|html [-o FILE] [--from-topic]
    whistle report --from 2026-11-01 --to 2026-11-30 --format html|md|csv [-o FILE]
    whistle handover --since 2026-12-06T08:00:00+08:00 [--until T] [--format md|html|json]
    whistle bench [--alarms 5000] [--rate 200] [--seconds 10] [--json FILE] [--svg FILE]
                  [--broker URL --url URL] [--skip-relay]    (see streams/bench/run.py)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import uuid
from datetime import date
from pathlib import Path

import httpx
from pydantic import ValidationError

from schemas import SIGNALS, utc_now
from streams.cli import campaigns as campaign_cli
from streams.cli import drills as drill_cli
from streams.cli import playbooks as playbook_cli
from streams.cli import silences as silence_cli
from streams.settings import ConfigError, Settings

__all__ = ["main"]

DEFAULT_URL = "http://127.0.0.1:6066"


def _settings(args: argparse.Namespace) -> Settings:
    """Environment first, then the flags given."""
    given = {name: getattr(args, name) for name in ("port", "broker", "playbooks", "sites", "data",
                                               "config")
             if getattr(args, name, None) is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SystemExit(f"whistle: bad setting: {exc}") from None


def durable(settings: Settings) -> Settings:
    """The settings with the topics' replication and the writes' min.insync.replicas: each
    WHISTLE_*'s, else the brokers' own (streams.kafka.cluster.durability_of)."""
    from streams.kafka.broker import BrokerError
    from streams.kafka.cluster import durability_of

    if settings.replication is not None and settings.min_insync_replicas is not None:
        return settings
    try:
        replication, min_insync = durability_of(settings.broker)
    except BrokerError as exc:
        raise SystemExit(f"whistle: {exc}") from None
    return settings.model_copy(update={
        "replication": settings.replication or replication,
        "min_insync_replicas": settings.min_insync_replicas or min_insync})


def cmd_up(args: argparse.Namespace) -> int:
    from streams.cli.up import run_up

    return run_up(_settings(args), embedded=args.broker is None,
                  sites_given=args.sites is not None)


def cmd_broker(args: argparse.Namespace) -> int:
    from streams.cli.up import run_broker

    # WHISTLE_DATA, or ./.whistle
    return run_broker(args.data or Settings().data, args.port, args.nodes)


def cmd_worker(args: argparse.Namespace) -> int:
    from playbooks import PlaybookError
    from streams.app import build
    from streams.runtime.closing import Worker

    settings = _settings(args)
    if args.broker_on_stdin:  # `whistle up`: imported (~1 s) while its broker started
        url = sys.stdin.readline().strip()
        if not url:  # whistle up stopped before its broker was ready
            return 0
        settings = settings.model_copy(update={"broker": url})
    settings = durable(settings)
    try:
        whistle = build(settings)
    except ConfigError as exc:
        raise SystemExit(f"whistle worker: the config is refused: {exc}") from None
    except PlaybookError as exc:  # file:line: message, for each problem
        raise SystemExit(f"whistle worker: the playbooks are refused:\n{exc}") from None
    worker = Worker(whistle.app, loglevel=settings.log_level, quiet=True)
    worker.spinner = None  # a progress spinner only mangles logs
    worker.execute_from_commandline()
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    if args.file:
        body = json.loads(Path(args.file).read_text(encoding="utf-8"))
    else:
        if not (args.kind and args.site):
            raise SystemExit("whistle send: give --kind and --site, or --file")
        body = {"alarm_id": args.alarm_id or f"cli-{uuid.uuid4().hex[:12]}", "kind": args.kind,
                "signal": args.signal, "site_id": args.site,
                "occurred_at": utc_now().isoformat(timespec="seconds")}
        if args.description:
            body["description"] = args.description
    try:
        answer = httpx.post(f"{args.url.rstrip('/')}/api/v1/alarms", json=body, timeout=15,
                            headers=_auth(args))
    except httpx.HTTPError as exc:
        print(f"whistle send: {args.url} did not answer: {exc}", file=sys.stderr)
        return 2
    print(f"{answer.status_code} {answer.text}")
    return 0 if answer.status_code == 202 else 1


def cmd_sites_import(args: argparse.Namespace) -> int:
    import asyncio

    from schemas.registry import RegistryError, read_registry
    from streams.runtime.registry import publish

    try:
        file = read_registry(args.file)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"whistle sites import: {exc}", file=sys.stderr)
        return 1
    settings = durable(_settings(args))
    try:
        count = asyncio.run(publish(settings.broker, file, partitions=settings.partitions,
                                    replication=settings.replication or 1))
    except Exception as exc:
        print(f"whistle sites import: the broker {settings.broker} did not take the records: "
              f"{exc!r}", file=sys.stderr)
        return 2
    print(f"{len(file.sites)} sites and {len(file.devices)} devices from {args.file} imported "
          f"onto whistle.registry ({count} records)")
    return 0


def _nodes(text: str) -> int:
    if not text.isdigit() or not (int(text) == 1 or 3 <= int(text) <= 9):
        raise argparse.ArgumentTypeError(f"{text!r}: 1, or a cluster of 3 to 9 nodes (its "
                                         f"topics keep 3 replicas)")
    return int(text)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _timelines(args: argparse.Namespace, wanted=lambda incident: True) -> list:
    from streams.reports import timelines_from_api, timelines_from_topic

    if args.from_topic:
        broker = args.broker or _settings(argparse.Namespace()).broker
        return [t for t in timelines_from_topic(broker)
                if wanted(t.incident.model_dump(mode="json"))]
    return timelines_from_api(args.url, _auth(args), wanted)


def _names() -> dict[str, str]:
    from playbooks.departments import load_departments

    return {d.id: d.name for d in load_departments(_settings(argparse.Namespace())
                                                   .departments).root}


def _write(args: argparse.Namespace, body: bytes) -> int:
    if args.output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    else:
        args.output.write_bytes(body)
        print(f"{args.output}: {len(body)} bytes", file=sys.stderr)
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from streams.reports import render_timeline

    try:
        found = _timelines(args, lambda incident: incident["incident_id"] == args.incident_id)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        print(f"whistle timeline: {exc}", file=sys.stderr)
        return 2
    if not found:
        print(f"whistle timeline: no incident {args.incident_id}", file=sys.stderr)
        return 1
    return _write(args, render_timeline(found[0], args.format, _names()))


def cmd_report(args: argparse.Namespace) -> int:
    from streams.reports import render_period

    if args.last < args.start:
        print("whistle report: --to is before --from", file=sys.stderr)
        return 2
    try:
        found = _timelines(args)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        print(f"whistle report: {exc}", file=sys.stderr)
        return 2
    return _write(args, render_period(found, args.start, args.last, args.format, _names()))


def cmd_handover(args: argparse.Namespace) -> int:
    """The shift handover from a running Whistle (an admin token): exit 1 when it refuses,
    2 when nothing answered."""
    query = {"since": args.since, "format": args.format,
             **({"until": args.until} if args.until else {})}
    try:
        answer = httpx.get(f"{args.url.rstrip('/')}/api/v1/handover", params=query,
                           headers=_auth(args), timeout=30)
    except httpx.HTTPError as exc:
        print(f"whistle handover: {args.url} did not answer: {exc}", file=sys.stderr)
        return 2
    if answer.status_code != 200:
        print(f"whistle handover: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1
    return _write(args, answer.content)


def cmd_bench(args: argparse.Namespace) -> int:
    from streams.bench.run import BenchOptions, run

    return run(BenchOptions(alarms=args.alarms, rate=args.rate, seconds=args.seconds,
                            broker=args.broker, url=args.url, json=args.json, svg=args.svg,
                            skip_relay=args.skip_relay, storm=not args.skip_storm,
                            memory=args.memory, workers=args.workers, peer=args.peer,
                            profile=args.profile, warm_broker=args.warm_broker))


def _auth(args: argparse.Namespace) -> dict[str, str]:
    token = getattr(args, "token", None) or os.environ.get("WHISTLE_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="whistle", description="街乡吹哨、部门报到: alarms in, "
                                "department tasks out.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start broker (embedded unless --broker), worker and API")
    up.add_argument("--port", type=int, help="HTTP port on 127.0.0.1 (default 6066)")
    up.add_argument("--broker", help="an existing Kafka, e.g. kafka://10.0.0.5:9092")
    up.add_argument("--playbooks", type=Path, help="directory of playbook YAML files")
    up.add_argument("--sites", type=Path, help="site registry YAML (default: the demo sites)")
    up.add_argument("--data", type=Path, help="directory for the broker's and the worker's "
                    "data and logs (default WHISTLE_DATA or ./.whistle); kept across restarts")
    up.add_argument("--config", type=Path, help="tokens and webhooks, YAML (default: "
                    "WHISTLE_CONFIG; none: open mode)")
    up.set_defaults(func=cmd_up)

    broker = sub.add_parser("broker", help="the embedded Apache Kafka node alone, or a cluster "
                            "of them, in the foreground (SIGTERM stops it)")
    broker.add_argument("--port", type=int, default=9092, help="the clients' port on "
                        "127.0.0.1 (default 9092); a cluster's nodes take consecutive ports "
                        "from it, then their controllers the next ones")
    broker.add_argument("--data", type=Path, help="its data directory (default WHISTLE_DATA or "
                        "./.whistle); the log directory is DATA/kafka, a cluster's node i's "
                        "DATA/node-i/kafka")
    broker.add_argument("--nodes", type=_nodes, default=1, help="a KRaft cluster of this many "
                        "nodes, each broker and controller (3: replication 3, "
                        "min.insync.replicas 2, as deploy/ runs); default 1")
    broker.set_defaults(func=cmd_broker)

    worker = sub.add_parser("worker", help="a production worker (WHISTLE_* settings)")
    worker.add_argument("--broker-on-stdin", action="store_true", help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)

    send = sub.add_parser("send", help="post one alarm (or a JSON file of alarms)")
    send.add_argument("--kind")
    send.add_argument("--site")
    send.add_argument("--signal", default="alarm", choices=SIGNALS)
    send.add_argument("--alarm-id")
    send.add_argument("--description")
    send.add_argument("--file", help="a JSON file: one alarm or an array")
    send.add_argument("--url", default=os.environ.get("WHISTLE_URL", DEFAULT_URL))
    send.add_argument("--token", help="bearer token (or WHISTLE_TOKEN)")
    send.set_defaults(func=cmd_send)

    sites = sub.add_parser("sites", help="the site and device registry")
    sites_sub = sites.add_subparsers(dest="sites_command", required=True)
    imp = sites_sub.add_parser("import", help="import a YAML or CSV registry file onto "
                               "whistle.registry (sites, devices)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--broker", help="Kafka bootstrap URL (default WHISTLE_BROKER)")
    imp.set_defaults(func=cmd_sites_import)

    url = os.environ.get("WHISTLE_URL", DEFAULT_URL)
    timeline = sub.add_parser("timeline", help="one incident's after-action timeline")
    timeline.add_argument("incident_id")
    timeline.add_argument("--format", default="json", choices=("json", "csv", "md", "html"))
    timeline.set_defaults(func=cmd_timeline)
    report = sub.add_parser("report", help="the period report: incidents and departments")
    report.add_argument("--from", dest="start", required=True, type=_date,
                        help="first local date, YYYY-MM-DD")
    report.add_argument("--to", dest="last", required=True, type=_date,
                        help="last local date, YYYY-MM-DD (included)")
    report.add_argument("--format", default="html", choices=("html", "md", "csv"))
    report.set_defaults(func=cmd_report)
    for command in (timeline, report):
        command.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
        command.add_argument("--url", default=url, help="a running Whistle (default "
                             "WHISTLE_URL or http://127.0.0.1:6066)")
        command.add_argument("--token", help="bearer token (or WHISTLE_TOKEN)")
        command.add_argument("--from-topic", action="store_true", help="read the whistle.timeline "
                             "and whistle.incidents topics instead of asking a worker")
        command.add_argument("--broker", help="with --from-topic (default WHISTLE_BROKER)")

    handover = sub.add_parser("handover", help="the shift handover (交接班): opened, closed, "
                              "escalated, still open, overdue")
    handover.add_argument("--since", required=True, help="when the shift began, RFC 3339 with "
                          "offset, e.g. 2026-12-06T08:00:00+08:00")
    handover.add_argument("--until", help="when it ended (default: now)")
    handover.add_argument("--format", default="md", choices=("md", "html", "json"))
    handover.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    handover.add_argument("--url", default=url, help="a running Whistle (default WHISTLE_URL "
                          "or http://127.0.0.1:6066)")
    handover.add_argument("--token", help="an admin's bearer token (or WHISTLE_TOKEN)")
    handover.set_defaults(func=cmd_handover)

    playbook_cli.add_parser(sub, url)
    silence_cli.add_parser(sub, url)
    campaign_cli.add_parser(sub, url)
    drill_cli.add_parser(sub, url)

    bench = sub.add_parser("bench", help="throughput and alarm-to-task latency, beside a plain "
                           "aiokafka relay (default: a fresh embedded broker and worker)")
    bench.add_argument("--alarms", type=int, default=5000, help="alarms for the throughput runs")
    bench.add_argument("--rate", type=float, default=200.0, help="alarms/s for the latency run")
    bench.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    bench.add_argument("--broker", help="a running deployment's Kafka (with --url); its "
                       "departments get real tasks: use staging")
    bench.add_argument("--url", help="that deployment's worker, e.g. http://HOST:6066")
    bench.add_argument("--json", type=Path, help="write every figure here")
    bench.add_argument("--svg", type=Path, help="draw the latency distribution here")
    bench.add_argument("--skip-relay", action="store_true", help="no plain-relay comparison")
    bench.add_argument("--skip-storm", action="store_true", help="no fire report in a storm of "
                       "10x --rate alarms")
    bench.add_argument("--memory", type=int, default=0, metavar="ALARMS", help="then ALARMS fire "
                       "reports at ALARMS/10 sites, and the workers' RSS (e.g. 100000)")
    bench.add_argument("--workers", type=int, default=1, help="worker processes to start "
                       "(embedded broker only)")
    bench.add_argument("--peer", choices=["alertmanager"], help="also compare with Debian's "
                       "Alertmanager, webhook to webhook (embedded broker only)")
    bench.add_argument("--profile", type=Path, help="py-spy the worker during the throughput "
                       "run: FILE.svg flame graph, FILE.json speedscope, else collapsed stacks")
    bench.add_argument("--warm-broker", type=float, default=15.0, metavar="SECONDS",
                       help="first, alarms at 200/s for SECONDS through the broker this command "
                       "starts, whose JVM compiles Kafka as it runs (0: measure it cold)")
    bench.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.func not in (cmd_worker, cmd_up, cmd_broker):
        # `whistle timeline ... | head` ends quietly; never in a server, where a client that
        # hangs up (a console closing its stream) would kill the process
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return args.func(args)

