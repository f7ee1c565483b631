"""Whistle's sizing arithmetic: partitions, workers, broker disk, worker volume and memory for a
number of devices, from message sizes measured on a live worker.

    python deploy/sizing.py                  # the table and arithmetic in deploy/README.md
    python deploy/sizing.py 10000 500000     # any other device counts
    (cd deploy; python -c "import sizing; print(sizing.rate_arithmetic(1000))")  # a rate

The measured constants come from `tests/deploy/conftest.py`'s scenario on a live `whistle up`
(200 heartbeats; the lab-fire incident from its alarms to its closing, every task answered);
tests/deploy checks them against a fresh measurement, and README.md's table against this
script's output. The assumptions are the `Load` defaults: change them, rerun, and size again.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

KIB, MIB, GIB = 1024, 1024**2, 1024**3
DAY = 86_400  # seconds

# -- measured (bytes: key + value of each record, as the broker stores them, before replication)
HEARTBEAT = {"whistle.alarms": 235, "whistle-devices-changelog": 84}  # 70 before battery, signal
# one incident (the lab fire: 3 alarms and a retry, 6 tasks each acknowledged, started and
# completed, closed, reporter feedback, one department on a webhook), per topic written
INCIDENT = {
    "whistle.alarms": 1_242, "whistle.site-events": 271,
    "whistle.incidents": 3_349, "whistle.tasks.*": 17_068, "whistle.task-updates": 4_486,
    "whistle.timeline": 11_277, "whistle.deliveries": 1_284, "whistle.feedback": 2_555,
    "whistle-alarms-seen-changelog": 202, "whistle-sites-changelog": 862,
    "whistle-devices-changelog": 170, "whistle-incidents-changelog": 3_698,
    "whistle-tasks-changelog": 19_085, "whistle-timelines-changelog": 171_671,
}
# ...and what compaction keeps of its changelog records: the last value of each key
INCIDENT_KEPT = {
    "whistle-alarms-seen-changelog": 202, "whistle-sites-changelog": 67,
    "whistle-devices-changelog": 170, "whistle-incidents-changelog": 1_056,
    "whistle-tasks-changelog": 4_838, "whistle-timelines-changelog": 11_441,
}
# ...and how many records that was, for the mean size of each message
INCIDENT_RECORDS = {"whistle.alarms": 4, "whistle.incidents": 4, "whistle.tasks.*": 24,
                    "whistle.timeline": 32}
REGISTRY_RECORD = 186              # mean record on whistle.registry (sites and devices)
REGISTRY_MEMORY = 725              # per device held by every worker
                                   # (agents.logic.locate.Registry)
DEVICE_INDEX = 394                 # per device, states and due index (python -m
                                   # agents.logic.health: 197 MB for 500,000 devices, README)
WORKER_BASE = 150 * MIB            # Python, Faust, aiokafka: 105-111 MiB RSS measured, rounded up
WORKER_THROUGHPUT = 600            # alarms/s through every stage, one worker on 2 cores (the
                                   # storm test: 10,000 alarms processed in 16.1 s)
WORKER_CPU_PER_ALARM = 3.0e-3      # s of worker CPU per fire report that opens an incident,
                                   # in a lasting flow of 200/s (`whistle bench`'s latency
                                   # phase, issue 21's seventh stop: 2.98 and 2.95 ms; 2.13 at
                                   # 350/s, 1.47 at 600/s as the batches grow; 1.3 in a burst):
                                   # each alarm is a fetch and a produce of its own. A worker
                                   # is one Python process, one core
CORE_BUSY = 0.6                    # a worker's core kept at most this busy when the rate lasts:
                                   # past it the queue, and the latency, grow
# -- configuration (deploy/k8s, deploy/kafka/create-topics.sh, Faust's defaults)
PARTITIONS = 12
BROKERS, REPLICATION = 3, 3
TABLES = 8                         # alarms-seen sites devices incidents tasks timelines
                                   # campaigns campaign-sites (the global playbook-versions
                                   # table is a few KiB)
ROCKSDB_MEMORY = 16 * MIB          # one block cache per worker, shared by every table partition,
                                   # that holds their write buffers too (WHISTLE_ROCKSDB_MEMORY_MB;
                                   # streams/runtime/rocks.py); Faust's: 3 x 64 MiB buffers and
                                   # a 2 GiB cache per table partition
DEPARTMENTS, STREAM_HISTORY = 11, 10_000  # stream history in memory, per worker
STREAM_EVENT = 0.78 * KIB          # per event held (streams.notify.feed.Event, its record
                                   # deflated: the lab fire's tasks 800 B; 870 B re-made
                                   # with their empty fields, 1.25 KiB as dicts)
RETENTION = {"whistle.alarms": 90, "whistle.triaged": 7, "whistle.site-events": 7}
# (whistle.triaged carries next to nothing since issue 21: dispatch runs in triage's step)
KEEP = 400                         # days, every other non-compacted topic
CHANGELOG_DIRTY = 0.25             # of a day's changelog writes not yet compacted (segment.ms 6 h)
HEADROOM = 1.5


@dataclass
class Load:
    """What a deployment of `devices` detectors sends (the assumptions)."""

    devices: int
    heartbeats_a_day: float = 24         # each device's `test` signal, once an hour
    devices_per_incident_a_day: float = 500  # 1 incident a day per 500 devices (mostly checks
                                             # of single detectors; the lab fire is far larger)
    storm_share: float = 0.10            # a storm: this share of devices signals within a minute

    @property
    def heartbeats(self) -> float:
        return self.devices * self.heartbeats_a_day / DAY

    @property
    def incidents_a_day(self) -> float:
        return self.devices / self.devices_per_incident_a_day

    @property
    def storm(self) -> float:
        return self.devices * self.storm_share / 60


@dataclass
class Plan:
    load: Load
    workers: int
    written_a_day: float
    retained: dict[str, float]   # bytes on the cluster before replication, by kind
    broker_disk: float           # per broker, replicated, with headroom
    tables: float                # RocksDB state after a year, all partitions
    worker_volume: float
    memory: dict[str, float]


def held(workers: int) -> int:
    """Partitions a worker holds once one of `workers` is lost."""
    return math.ceil(PARTITIONS / (workers - 1))


def message_sizes() -> dict[str, float]:
    """Mean bytes of one message of each kind (key and JSON value), as measured."""
    return {"Alarm (a heartbeat)": HEARTBEAT["whistle.alarms"],
            **{name: INCIDENT[topic] / INCIDENT_RECORDS[topic] for name, topic in (
                ("Alarm (the lab fire's)", "whistle.alarms"),
                ("Incident snapshot", "whistle.incidents"),
                ("Task snapshot", "whistle.tasks.*"),
                ("TimelineEntry", "whistle.timeline"))}}


def plan(load: Load) -> Plan:
    hb_day, inc_day = load.heartbeats * DAY, load.incidents_a_day
    topic_day = {t: HEARTBEAT.get(t, 0) * hb_day + INCIDENT.get(t, 0) * inc_day
                 for t in {*HEARTBEAT, *INCIDENT}}
    changelog = {t: n for t, n in topic_day.items() if t.endswith("-changelog")}
    tables = load.devices * HEARTBEAT["whistle-devices-changelog"] + 365 * inc_day * sum(
        INCIDENT_KEPT.values())
    retained = {
        "alarms (90 days)": topic_day["whistle.alarms"] * RETENTION["whistle.alarms"],
        "incident records (400 days)": sum(
            n * KEEP for t, n in topic_day.items()
            if not t.endswith("-changelog") and t not in RETENTION),
        "stage hand-overs (7 days)": sum(topic_day.get(t, 0) * d for t, d in RETENTION.items()
                                         if t != "whistle.alarms"),
        "tables, compacted (after a year)": tables + sum(changelog.values()) * CHANGELOG_DIRTY,
        "registry, compacted": load.devices * REGISTRY_RECORD,
    }
    broker_disk = sum(retained.values()) * REPLICATION / BROKERS * HEADROOM
    # enough to drain a storm in 30 s, twice over (one lost or restarting), never fewer than 3
    workers = max(3, 2 * math.ceil(load.storm * 60 / (WORKER_THROUGHPUT * 30)))
    workers = min(workers, PARTITIONS)
    memory = {
        "Python, Faust, aiokafka": WORKER_BASE,
        "site and device registry (whole)": load.devices * REGISTRY_MEMORY,
        "device health index (its partitions)":
            load.devices * DEVICE_INDEX * held(workers) / PARTITIONS,
        "stream history (full)": DEPARTMENTS * STREAM_HISTORY * STREAM_EVENT,
        "RocksDB memtables and cache (shared: its limit)": ROCKSDB_MEMORY,
    }
    return Plan(load=load, workers=workers, written_a_day=sum(topic_day.values()),
                retained=retained, broker_disk=broker_disk, tables=tables,
                worker_volume=10 * GIB * math.ceil(tables * 2 / (10 * GIB)), memory=memory)


@dataclass
class RatePlan:
    """Workers for a lasting rate of alarms that each open an incident (the costliest kind)."""

    rate: float
    cores: float     # worker CPU the rate takes
    workers: int     # at CORE_BUSY each, and one more to lose


def rate_plan(rate: float) -> RatePlan:
    cores = rate * WORKER_CPU_PER_ALARM
    workers = math.ceil(cores / CORE_BUSY) + 1
    return RatePlan(rate=rate, cores=cores, workers=min(workers, PARTITIONS))


def rate_arithmetic(rate: float) -> str:
    """The workers for `rate` alarms/s, line by line."""
    p = rate_plan(rate)
    return (f"- {rate:,.0f} alarms/s × {WORKER_CPU_PER_ALARM * 1000:g} ms of worker CPU each "
            f"= {p.cores:.2f} cores; at {CORE_BUSY:.0%} busy each, "
            f"{math.ceil(p.cores / CORE_BUSY)} workers, one more to lose = **{p.workers} "
            f"workers** of 1 core (≤ {PARTITIONS} partitions)\n")


def _size(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def _rate(n: float) -> str:
    return f"{n:,.1f}/s"


def render(loads: list[Load]) -> str:
    """The README's sizing table and the arithmetic behind it, as Markdown."""
    plans = [plan(x) for x in loads]
    head = "| | " + " | ".join(f"{p.load.devices:,} devices" for p in plans) + " |"
    rows = [head, "|---|" + "---:|" * len(plans)]

    def row(name: str, cells) -> None:
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    row("heartbeats (each device once an hour)", [_rate(p.load.heartbeats) for p in plans])
    row("incidents a day (1 per 500 devices)", [f"{p.load.incidents_a_day:,.0f}" for p in plans])
    row("storm: 10% of devices within a minute", [_rate(p.load.storm) for p in plans])
    row("written to Kafka a day (before replication)", [_size(p.written_a_day) for p in plans])
    for kind in plans[0].retained:
        row(f"kept: {kind}", [_size(p.retained[kind]) for p in plans])
    row("**partitions** (every topic)", [str(PARTITIONS) for _ in plans])
    row("**workers**", [str(p.workers) for p in plans])
    row("**broker disk**, each of 3 (RF 3, ×1.5)", [_size(p.broker_disk) for p in plans])
    row("**worker volume** (RocksDB, PVC, in 10 GiB steps)",
        [_size(p.worker_volume) for p in plans])
    for kind in plans[0].memory:
        row(f"memory: {kind}", [_size(p.memory[kind]) for p in plans])
    row("**worker memory** (sum: the limit)", [_size(sum(p.memory.values())) for p in plans])
    return "\n".join(rows) + "\n"


def arithmetic(load: Load) -> str:
    """How the figures for one load are reached, line by line."""
    p, inc = plan(load), load.incidents_a_day
    hb = sum(HEARTBEAT.values())
    per_incident = sum(INCIDENT.values())
    lines = [
        "message sizes: " + ", ".join(f"{k} {v:,.0f} B" for k, v in message_sizes().items()),
        f"{load.devices:,} devices × {load.heartbeats_a_day:g} heartbeats a day = "
        f"{load.heartbeats * DAY:,.0f} a day ({_rate(load.heartbeats)}); "
        f"{inc:,.0f} incidents a day",
        f"heartbeat: {HEARTBEAT['whistle.alarms']} B on whistle.alarms + "
        f"{HEARTBEAT['whistle-devices-changelog']} B on the devices changelog = {hb} B",
        f"incident (the lab fire, every task answered): {per_incident:,} B written, of which "
        f"{INCIDENT['whistle-timelines-changelog']:,} B timeline changelog (the whole "
        f"timeline is rewritten at every entry); {sum(INCIDENT_KEPT.values()):,} B of table "
        f"state kept for ever",
        f"written a day: {load.heartbeats * DAY:,.0f} × {hb} B + {inc:,.0f} × {per_incident:,} B"
        f" = {_size(p.written_a_day)}",
        f"broker disk: {_size(sum(p.retained.values()))} kept × RF {REPLICATION} / "
        f"{BROKERS} brokers × {HEADROOM} = {_size(p.broker_disk)} each",
        f"workers: storm {load.storm * 60:,.0f} signals / ({WORKER_THROUGHPUT}/s × 30 s) = "
        f"{math.ceil(load.storm * 60 / (WORKER_THROUGHPUT * 30))}, doubled, at least 3 = "
        f"{p.workers}",
        f"worker volume: tables after a year {_size(p.tables)} × 2 (RocksDB space "
        f"amplification, growth), rounded up to 10 GiB steps = {_size(p.worker_volume)}",
        f"worker memory: RocksDB's {TABLES} tables × {held(p.workers)} partitions (12 over "
        f"{p.workers - 1} workers, one lost) share one cache that holds their memtables too: "
        f"{_size(p.memory['RocksDB memtables and cache (shared: its limit)'])}",
    ]
    return "".join(f"- {line}\n" for line in lines)


def main(argv: list[str]) -> int:
    loads = [Load(int(n)) for n in argv] or [Load(10_000), Load(500_000)]
    print(render(loads))
    for load in loads:
        print(arithmetic(load))
    print(rate_arithmetic(1_000))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
