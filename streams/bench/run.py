"""`whistle bench`: how fast the whole pipeline is, beside a plain Kafka relay on the same broker.

    whistle bench                                    # a fresh embedded broker and worker
    whistle bench --broker kafka://HOST:9092 --url http://HOST:6066   # a running deployment

Three measures, printed side by side and written with `--json FILE`:

- throughput: N people's fire reports at N distinct (unregistered) sites are produced straight
  onto `whistle.alarms`, keyed by site as the HTTP ingest does; the clock runs from the first
  send until every task they cause (revision 1) has been read back from its department topic.
- latency: alarms of the same kind at a steady rate R for S seconds; for each, the time from
  its send to the first of its tasks read back from a department topic (end to end, read by
  this process; `--svg FILE` draws the distribution).
- relay: the same N alarms through a plain aiokafka process (consume, json-decode, produce as
  many task records of the same size as Whistle made) on bench topics of the same broker.

Against a running deployment the alarms are real: their tasks reach the fire brigade's and the
grid workers' topics (and webhooks). Use a staging deployment; site ids start `bench-`.

This module is the entry: `run(BenchOptions(...))` starts what the options need (an embedded
broker, workers, Alertmanager), measures (`streams.bench.measure`), stops them, and prints and
writes the figures (`streams.bench.report`). `python -m streams.bench.run relay|faust-relay ...`
is the relay process of `streams.bench.relay`, as `python -m streams.bench.relay` is.

    exit_code = run(BenchOptions(alarms=300, rate=50, seconds=3, json=Path("out.json")))
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playbooks import load_playbooks
from streams.bench.alertmanager import Alertmanager, alertmanager_config
from streams.bench.basics import percentile, say
from streams.bench.measure import measure_all
from streams.bench.metrics import process_figures
from streams.bench.options import BenchOptions, refused
from streams.bench.peer import Receiver, webhooks_env
from streams.bench.relay import KINDS
from streams.bench.relay import main as relay_main
from streams.bench.report import svg, table
from streams.bench.workers import departments as configured_departments
from streams.bench.workers import start_worker, time_up
from streams.kafka.broker import BrokerError, EmbeddedBroker
from streams.procs import stop_process, stop_started
from streams.settings import Settings

# percentile and start_worker are re-exported: tests and callers import them from here
__all__ = ["BenchOptions", "complete", "percentile", "run", "start_worker"]


def run(opts: BenchOptions) -> int:
    """Measure, print the table, write the JSON and SVG. 0 when every task was seen.

        run(BenchOptions(broker="kafka://HOST:9092", url="http://HOST:6066", skip_relay=True))
    """
    if (why := refused(opts)) is not None:
        print(f"whistle bench: {why}", file=sys.stderr)
        return 2

    def interrupted(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)  # stop the children in order, as for Ctrl-C

    scratch = broker = alertmanager = receiver = None
    workers: list[subprocess.Popen] = []
    startup: dict | None = None
    try:
        if opts.broker is None:
            scratch = Path(tempfile.mkdtemp(prefix="whistle-bench-"))
            say("whistle up to ready, on a new data directory and again on it ...")
            startup = time_up(scratch / "up")
            started = time.monotonic()
            broker = EmbeddedBroker(scratch / "broker").start()
            startup["broker_ready_s"] = time.monotonic() - started
            extra = {}
            if opts.peer:
                receiver = Receiver()
                departments = configured_departments()
                extra = webhooks_env(receiver.url, departments)
                settings = Settings()
                alertmanager = Alertmanager(alertmanager_config(
                    load_playbooks(settings.playbooks, set(departments)), departments,
                    receiver.url), scratch / "alertmanager").start()
            urls = []
            for i in range(opts.workers):
                worker, url = start_worker(broker.url, scratch / f"worker-{i}", extra)
                workers.append(worker)
                urls.append(url)
            store = Settings().store  # what the workers read from the same environment
            where = (f"embedded Apache Kafka {broker.url}, {len(urls)} worker(s) "
                     f"{', '.join(urls)} (started here, tables {store})"
                     + (", department webhooks on" if receiver is not None else ""))
            target = broker.url
        else:
            assert opts.url is not None  # refused() lets --broker through only with --url
            urls, target, store = [opts.url], opts.broker, None
            where = f"broker {target}, worker {opts.url}"
        say(where)
        figures = asyncio.run(measure_all(opts, target, urls, [w.pid for w in workers],
                                          receiver, alertmanager))
        figures["where"], figures["store"] = where, store
        if startup is not None:  # the embedded broker was started, with startup timed
            assert broker is not None and broker.process is not None
            broker_now = process_figures(broker.process.pid)  # CPU: over the whole run
            startup["broker_rss_mb"] = broker_now["rss_mb"]
            startup["broker_cpu_s"] = broker_now["cpu_s"]
        figures["startup"] = startup
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except (BrokerError, RuntimeError, OSError) as exc:
        say(str(exc))
        return 1
    finally:
        if alertmanager is not None:
            alertmanager.stop()
        for worker in workers[1:]:
            stop_process(worker, 6.0)
        stop_started(workers[0] if workers else None, broker, scratch)
    print(table(figures))
    if opts.json is not None:
        opts.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    if opts.svg is not None:
        opts.svg.write_text(svg(figures["latencies_ms"], figures["latency"]), encoding="utf-8")
    return 0 if complete(figures) else 1


def complete(figures: dict) -> bool:
    """Every task (and webhook) each phase expected was seen.

        exit_code = 0 if complete(figures) else 1
    """
    def whole(phase: dict | None, seen: str = "tasks_seen",
              expected: str = "tasks_expected") -> bool:
        return phase is None or phase[seen] >= phase[expected]
    peer = figures.get("peer")
    return (whole(figures["throughput"]) and whole(figures["latency"])
            and whole(figures["relay"]) and whole(figures.get("faust_relay"))
            and (figures["storm"] is None or figures["storm"]["fire_first_task_ms"] is not None)
            and (figures["memory"] is None or figures["memory"]["incidents_with_tasks"]
                 >= figures["memory"]["incidents"])
            and (peer is None or all(whole(peer[phase][side], "webhooks_seen",
                                           "webhooks_expected")
                                     for phase in ("throughput", "latency")
                                     for side in ("whistle", "alertmanager"))))


# the relay processes were started as `python -m streams.bench.run KIND ...` before they had a
# module of their own; the same command still starts one
if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in KINDS:
    relay_main(sys.argv[1:])
