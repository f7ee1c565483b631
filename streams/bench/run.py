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
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import ProcessCollector

from schemas import Alarm, utc_now

from schemas import topics
from streams.kafka.broker import BrokerError, EmbeddedBroker, bootstrap_servers, free_port
from schemas.codec import dump
from streams.procs import answers_ok, child_options, stop_process, stop_started
from streams.bench.report import (TARGET_FIRE_MS, TARGET_P99_MS, TARGET_RATIO, TARGET_RSS_MB,
                           paced, percentile, svg, table)
from streams.settings import Settings

__all__ = ["BenchOptions", "percentile", "run", "start_worker"]

READY_TIMEOUT = 60.0
_SCRAPER = httpx.Client(timeout=5)  # one client: a new one costs more CPU than the scrape


@dataclass
class BenchOptions:
    alarms: int = 5000
    rate: float = 200.0
    seconds: float = 10.0
    broker: str | None = None
    url: str | None = None
    json: Path | None = None
    svg: Path | None = None
    skip_relay: bool = False
    storm: bool = True            # a fire report in the middle of a 10x storm
    memory: int = 0               # alarms for the RSS phase (10 per incident); 0: none
    workers: int = 1              # worker processes (embedded broker only)
    peer: str | None = None       # "alertmanager"
    profile: Path | None = None   # py-spy the (first) worker during the throughput run


def _alarm(site: str, alarm_id: str, kind: str = "fire_report",
           device: str | None = None) -> bytes:
    now = utc_now()
    alarm = Alarm.model_validate({"alarm_id": alarm_id, "kind": kind, "signal": "alarm",
                                  "site_id": site, "device_id": device,
                                  "occurred_at": now.isoformat()}, context={"now": now})
    return dump(alarm.model_copy(update={"received_at": now}))


class Watcher:
    """Reads task topics from their current end and notes, per site, when its first task
    (revision 1) arrived and which task ids it had."""

    def __init__(self, servers: list[str], names: list[str], prefix: str) -> None:
        self.servers, self.names, self.prefix = servers, names, prefix
        self.first: dict[str, float] = {}
        self.tasks: dict[str, set[str]] = {}
        self.sizes: list[int] = []
        self.departments: set[str] = set()
        self.count = 0
        self.last_at = 0.0
        self.changed = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        c = AIOKafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False,
                             fetch_max_wait_ms=5, auto_offset_reset="latest")
        await c.start()
        self._consumer = c
        tps: list[TopicPartition] = []
        deadline = time.monotonic() + 30
        while True:
            await c._client.force_metadata_update()  # no subscription: every topic
            tps = [TopicPartition(t, p) for t in self.names
                   for p in sorted(c.partitions_for_topic(t) or ())]
            if tps or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if not tps:
            raise RuntimeError(f"none of the topics {self.names} exists")
        c.assign(tps)
        await c.seek_to_end(*tps)
        for tp in tps:  # resolve the end now, before anything is produced
            await c.position(tp)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._consumer is not None
        prefix = self.prefix.encode()
        while True:
            batch = await self._consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    if prefix not in r.value:
                        continue
                    v = json.loads(r.value)
                    site = v.get("site_id", "")
                    if v.get("revision") != 1 or not site.startswith(self.prefix) \
                            or v.get("notice_of"):  # 督办 notices of missed deadlines: later
                        continue
                    ids = self.tasks.setdefault(site, set())
                    if v["task_id"] in ids:
                        continue  # at-least-once: a task seen again
                    ids.add(v["task_id"])
                    self.first.setdefault(site, now)
                    self.sizes.append(len(r.value))
                    self.departments.add(v.get("department", ""))
                    self.count += 1
                    self.last_at = now
            if batch:
                self.changed.set()

    async def wait_count(self, prefix: str, expected: int, timeout: float) -> int:
        """Wait until `expected` tasks of sites starting with `prefix` were seen."""
        deadline = time.monotonic() + timeout
        while True:
            seen = sum(len(ids) for s, ids in self.tasks.items() if s.startswith(prefix))
            if seen >= expected or time.monotonic() > deadline:
                return seen
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        task, consumer, self._task, self._consumer = self._task, self._consumer, None, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if consumer is not None:
            await consumer.stop()


async def _produce(producer: AIOKafkaProducer, topic: str,
                   items: list[tuple[str, bytes]]) -> None:
    acks = [await producer.send(topic, value, key=site.encode()) for site, value in items]
    await asyncio.gather(*acks)


async def _throughput(producer, watcher: Watcher, topic: str, prefix: str, n: int,
                      per_alarm: int) -> dict:
    items = [(f"{prefix}{i:06d}", _alarm(f"{prefix}{i:06d}", f"{prefix}{i:06d}"))
             for i in range(n)]
    started = time.perf_counter()
    await _produce(producer, topic, items)
    produced = time.perf_counter() - started
    expected = n * per_alarm
    seen = await watcher.wait_count(prefix, expected, timeout=max(60.0, n / 20))
    elapsed = max(0.0, watcher.last_at - started)
    return {"alarms": n, "tasks_expected": expected, "tasks_seen": seen,
            "produced_s": round(produced, 3), "elapsed_s": round(elapsed, 3),
            "alarms_per_s": round(n / elapsed, 1) if elapsed > 0 else 0.0,
            "tasks_per_s": round(seen / elapsed, 1) if elapsed > 0 else 0.0}


WARM_UP = 1.0  # seconds at the start of the latency run kept out of its percentiles


async def _latency(producer, watcher: Watcher, prefix: str, rate: float, seconds: float,
                   per_alarm: int) -> tuple[dict, list[float]]:
    """`seconds` of alarms at `rate` after a first second of warm-up at the same rate; the
    percentiles are the steady state's, the warm-up's slowest is reported beside them (the
    first alarms after an idle spell wait ~0.1-0.2 s on the embedded broker)."""
    warm = int(rate * WARM_UP)
    n = max(1, int(rate * seconds)) + warm
    sent: dict[str, float] = {}
    acks = []
    start = time.perf_counter()
    async for i in paced(n, rate):
        site = f"{prefix}{i:06d}"
        value = _alarm(site, site)
        sent[site] = time.perf_counter()
        acks.append(await producer.send(topics.ALARMS, value, key=site.encode()))
    await asyncio.gather(*acks)
    sending = time.perf_counter() - start
    seen = await watcher.wait_count(prefix, n * per_alarm, timeout=60.0)
    timed = list(sent.items())
    warming, timed = timed[:warm], timed[warm:]
    ms = sorted((watcher.first[s] - t) * 1000 for s, t in timed if s in watcher.first)
    # an alarm never answered counts as slower than any answered one, never as absent
    ranked = ms + [float("inf")] * (len(timed) - len(ms))
    cold = [(watcher.first[s] - t) * 1000 for s, t in warming if s in watcher.first]

    def q(p: float) -> float | None:
        v = percentile(ranked, p)
        return None if v == float("inf") else round(v, 2)
    return ({"rate": rate, "seconds": seconds, "alarms": len(timed), "achieved_rate":
             round(n / sending, 1) if sending else 0.0, "alarms_answered": len(ms),
             "warm_up_alarms": warm, "warm_up_max_ms": round(max(cold), 2) if cold else None,
             "tasks_expected": n * per_alarm, "tasks_seen": seen,
             "p50_ms": q(50), "p90_ms": q(90), "p99_ms": q(99), "max_ms": q(100),
             "mean_ms": round(sum(ms) / len(ms), 2) if ms else None}, ms)


# -- the relay: a process of its own, like the worker ------------------------------------------

def _relay_tasks(value: bytes, targets: list[str], per_alarm: int,
                 size: int) -> list[tuple[str, bytes, bytes]]:
    """What a relay sends for one alarm: `per_alarm` task records of about `size` bytes, one
    to each of `targets` in turn, keyed by site (topic, key, value)."""
    alarm = json.loads(value)
    site = alarm["site_id"]
    out = []
    for k in range(per_alarm):
        target = targets[k % len(targets)]
        task = {"task_id": f"{site}.{k}", "incident_id": site,
                "department": target.rsplit(".", 1)[-1], "site_id": site, "revision": 1,
                "status": "dispatched"}
        body = json.dumps(task, separators=(",", ":"))
        task["pad"] = "x" * max(0, size - len(body) - 9)
        out.append((target, site.encode(), json.dumps(task, separators=(",", ":")).encode()))
    return out


async def relay(broker: str, source: str, targets: list[str], per_alarm: int, size: int) -> None:
    """Consume `source` from the start, json-decode each alarm, and produce its task records
    (`_relay_tasks`): the practical limit of this work on this broker."""
    servers = bootstrap_servers(broker)
    consumer = AIOKafkaConsumer(source, bootstrap_servers=servers, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await consumer.start()
    await producer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=2000)
            acks = []
            for records in batch.values():
                for r in records:
                    for topic, key, value in _relay_tasks(r.value, targets, per_alarm, size):
                        acks.append(await producer.send(topic, value, key=key))
            await asyncio.gather(*acks)
    finally:
        await consumer.stop()
        await producer.stop()


def faust_relay(broker: str, source: str, targets: list[str], per_alarm: int, size: int,
                data: Path) -> None:
    """The same relay as one plain Faust agent (Faust's own transport and settings, but for a
    short rebalance timeout so that it joins in seconds): what Faust itself costs for this
    work, before Whistle does anything. Runs until SIGTERM."""
    import faust

    app = faust.App(f"{source}-faust", broker=broker, datadir=str(data), store="memory://",
                    web_enabled=False, consumer_auto_offset_reset="earliest",
                    topic_disable_leader=True, producer_acks=-1,
                    broker_rebalance_timeout=6, broker_session_timeout=6,
                    broker_heartbeat_interval=1)
    alarms = app.topic(source, key_serializer="raw", value_serializer="raw")
    out = {t: app.topic(t, key_serializer="raw", value_serializer="raw") for t in targets}

    @app.agent(alarms)
    async def relay_agent(stream: Any) -> None:
        async for value in stream:
            for topic, key, task in _relay_tasks(value, targets, per_alarm, size):
                await out[topic].send(key=key, value=task)

    @app.on_rebalance_complete.connect
    async def ready(sender: Any, **kwargs: Any) -> None:
        print("ready", flush=True)

    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # its terminal codes on stdout, where only "ready" is said
    worker.execute_from_commandline()


async def _relay_phase(broker: str, producer, run_id: str, n: int, per_alarm: int,
                       departments: list[str], size: int, partitions: int,
                       kind: str = "relay") -> dict:
    """`n` alarms through a relay process of `kind`: "relay" (aiokafka) or "faust-relay"."""
    servers = bootstrap_servers(broker)
    base = f"whistle-bench-{run_id}-{kind}"
    source, targets = f"{base}.alarms", [f"{base}.tasks.{d}" for d in departments]
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    process = watcher = data = None
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in (source, *targets)])
        watcher = Watcher(servers, targets, "bench-")
        await watcher.start()
        data = Path(tempfile.mkdtemp(prefix="whistle-bench-"))
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.bench.run", kind, broker, source, ",".join(targets),
             str(per_alarm), str(size), str(data)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, text=True, **child_options())
        try:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        except TimeoutError:
            line = ""
        if line.strip() != "ready":
            raise RuntimeError(f"the {kind} was not ready within 60 s "
                               f"(exit code {process.poll()})")
        prefix = f"bench-{run_id}-{kind}-"
        result = await _throughput(producer, watcher, source, prefix, n, per_alarm)
        return {**result, "task_bytes": size, "topics": [source, *targets]}
    finally:
        if watcher is not None:
            await watcher.stop()
        if process is not None:
            await asyncio.to_thread(stop_process, process, 6.0)
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)
        try:
            await admin.delete_topics([source, *targets])
        except Exception:
            pass  # the embedded broker goes anyway; a real one keeps a few bench topics
        await admin.close()


# -- the run ------------------------------------------------------------------------------------

def _histogram(url: str) -> dict[float, float]:
    """The worker's `whistle_alarm_to_task_seconds` buckets (upper bound -> cumulative count);
    empty when /metrics does not answer."""
    try:
        text = _SCRAPER.get(f"{url.rstrip('/')}/metrics").text
    except httpx.HTTPError:
        return {}
    found = {}
    for line in text.splitlines():
        if line.startswith("whistle_alarm_to_task_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[float(bound)] = float(line.rsplit(" ", 1)[1])
    return found


def _worker_view(before: dict[float, float], after: dict[float, float]) -> dict | None:
    """The upper bucket bounds (ms) holding the worker's own p50 and p99 over the run."""
    diff = sorted((b, after[b] - before.get(b, 0.0)) for b in after)
    if not diff or diff[-1][1] <= 0:
        return None
    total = diff[-1][1]

    def bound(q: float) -> float | None:
        b = next(b for b, c in diff if c >= total * q)
        return None if b == float("inf") else b * 1000
    return {"observations": int(total), "p50_le_ms": bound(0.5), "p99_le_ms": bound(0.99)}


def _scrape(url: str, name: str) -> float | None:
    """The sum of an unlabelled series (e.g. `process_cpu_seconds_total`) on the worker's
    /metrics, or None when it does not answer."""
    try:
        text = _SCRAPER.get(f"{url.rstrip('/')}/metrics").text
    except httpx.HTTPError:
        return None
    found = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith(name + " ")]
    return sum(found) if found else None


async def _cpu(urls: list[str]) -> float | None:
    """CPU seconds the workers have used so far (their `process_cpu_seconds_total`)."""
    used = [await asyncio.to_thread(_scrape, u, "process_cpu_seconds_total") for u in urls]
    return None if None in used else sum(used)


async def _idle_rate(urls: list[str], seconds: float = 2.0) -> float:
    """The workers' CPU use (cores) when nothing is sent: their consumers' polling."""
    before = await _cpu(urls)
    await asyncio.sleep(seconds)
    after = await _cpu(urls)
    return 0.0 if before is None or after is None else (after - before) / seconds


async def _settle(urls: list[str], idle: float, timeout: float = 180.0) -> float:
    """Wait until the workers are back to about their `idle` CPU use (within 10% of a core)
    for two seconds in a row: the later stages have drained. Returns the seconds waited."""
    started = time.monotonic()
    last = await _cpu(urls)
    quiet = 0
    while last is not None and time.monotonic() - started < timeout and quiet < 2:
        await asyncio.sleep(1.0)
        now = await _cpu(urls)
        quiet = quiet + 1 if now is not None and now - last <= idle + 0.1 else 0
        last = now
    return round(time.monotonic() - started, 1)


async def _storm(producer, watcher: Watcher, prefix: str, rate: float, seconds: float) -> dict:
    """Smoke alarms from devices at many sites at `rate` for `seconds`, and halfway through a
    person's fire report at a site of its own (confirmed at once): how soon its first task
    is out, against GB 50440's 3 s."""
    n = max(1, int(rate * seconds))
    sites = max(1, n // 5)  # five alarms a site: the first opens an incident, the rest join it
    fire = f"{prefix}fire"
    fire_sent = None
    acks = []
    start = time.perf_counter()
    async for i in paced(n, rate):
        if fire_sent is None and i >= n // 2:
            fire_sent = time.perf_counter()
            acks.append(await producer.send(topics.ALARMS, _alarm(fire, fire), key=fire.encode()))
        site = f"{prefix}{i % sites:06d}"
        value = _alarm(site, f"{prefix}a{i:07d}", kind="smoke", device=f"{site}-smk")
        acks.append(await producer.send(topics.ALARMS, value, key=site.encode()))
    await asyncio.gather(*acks)
    sending = time.perf_counter() - start
    await watcher.wait_count(fire, 1, timeout=120.0)
    answered = watcher.first.get(fire)
    fire_ms = round((answered - fire_sent) * 1000, 1) if answered and fire_sent else None
    return {"rate": rate, "seconds": seconds, "alarms": n, "sites": sites,
            "achieved_rate": round(n / sending, 1) if sending else 0.0,
            "fire_first_task_ms": fire_ms,
            "met": fire_ms is not None and fire_ms <= TARGET_FIRE_MS}


async def _memory(producer, watcher: Watcher, urls: list[str], idle: float, prefix: str,
                  n: int, per_alarm: int) -> dict:
    """`n` fire reports at n/10 sites (one open incident each, the other nine join it); the
    workers' RSS once every incident has its tasks and the workers are idle."""
    sites = max(1, n // 10)
    items = [(f"{prefix}{i % sites:06d}", _alarm(f"{prefix}{i % sites:06d}", f"{prefix}a{i:07d}"))
             for i in range(n)]
    started = time.perf_counter()
    await _produce(producer, topics.ALARMS, items)
    await watcher.wait_count(prefix, sites * per_alarm, timeout=max(120.0, n / 50))
    opened = sum(1 for site in watcher.tasks if site.startswith(prefix))
    await _settle(urls, idle, timeout=max(120.0, n / 100))
    rss = [await asyncio.to_thread(_scrape, u, "process_resident_memory_bytes") for u in urls]
    mb = round(sum(r for r in rss if r) / 1e6, 1) if all(rss) else None  # MB, as the target
    return {"alarms": n, "incidents": sites, "incidents_with_tasks": opened,
            "elapsed_s": round(time.perf_counter() - started, 1), "rss_mb": mb,
            "rss_mib": round(sum(r for r in rss if r) / 2**20, 1) if all(rss) else None,
            "rss_mb_per_worker": [round(r / 1e6, 1) for r in rss if r],
            "met": mb is not None and mb <= TARGET_RSS_MB}


async def _measure(opts: BenchOptions, broker: str, urls: list[str],
                   pids: list[int]) -> dict:
    run_id = uuid.uuid4().hex[:8]
    servers = bootstrap_servers(broker)
    names = [topics.task_topic(d) for d in _departments()]
    watcher = Watcher(servers, names, f"bench-{run_id}-")
    await watcher.start()
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    url = urls[0]
    storm = memory = None
    try:
        # one alarm first: how many tasks, to whom, how big; it also warms the pipeline up
        probe = f"bench-{run_id}-p0"
        await _produce(producer, topics.ALARMS, [(probe, _alarm(probe, probe))])
        if not await watcher.wait_count(probe, 1, timeout=30):
            raise RuntimeError("no task for the probe alarm within 30 s: is the worker "
                               "running against this broker?")
        await asyncio.sleep(1.5)  # the rest of its tasks
        per_alarm = len(watcher.tasks[probe])
        departments = sorted(watcher.departments)
        size = round(sum(watcher.sizes) / len(watcher.sizes))
        say(f"a fire_report opens one incident and {per_alarm} task(s) "
            f"({', '.join(departments)}), {size} bytes each")
        idle = await _idle_rate(urls)
        say(f"the worker(s) use {idle:.0%} of a core when idle (polling)")

        # latency first, on an idle pipeline; then the burst, whose backlog nothing follows
        say(f"latency, {opts.rate:g}/s for {opts.seconds:g} s ...")
        before = await asyncio.to_thread(_histogram, url)
        latency, ms = await _latency(producer, watcher, f"bench-{run_id}-l", opts.rate,
                                     opts.seconds, per_alarm)
        latency["worker_histogram"] = _worker_view(before, await asyncio.to_thread(_histogram,
                                                                                    url))
        await _settle(urls, idle)
        say(f"throughput, {opts.alarms} alarms ...")
        cpu = await _cpu(urls)
        profiler = _profile(pids[0], opts.profile) if opts.profile and pids else None
        try:
            through = await _throughput(producer, watcher, topics.ALARMS, f"bench-{run_id}-t",
                                        opts.alarms, per_alarm)
        finally:
            if profiler is not None:
                await asyncio.to_thread(_stop_profile, profiler, opts.profile)
        drained = await _settle(urls, idle)
        used = await _cpu(urls)
        if cpu is not None and used is not None:  # the later stages' share included
            through["worker_cpu_ms_per_alarm"] = round((used - cpu) * 1000 / opts.alarms, 2)
            through["drained_after_s"] = drained
        relayed = faust_relayed = None
        if not opts.skip_relay:
            partitions = await _partitions(producer)
            say(f"plain aiokafka relay, {opts.alarms} alarms ...")
            relayed = await _relay_phase(broker, producer, run_id, opts.alarms, per_alarm,
                                         departments, size, partitions)
            say(f"the same relay as a plain Faust agent, {opts.alarms} alarms ...")
            faust_relayed = await _relay_phase(broker, producer, run_id, opts.alarms,
                                               per_alarm, departments, size, partitions,
                                               "faust-relay")
        if opts.storm:
            say(f"storm, {opts.rate * 10:g} alarms/s for {opts.seconds:g} s, a fire report "
                f"halfway ...")
            storm = await _storm(producer, watcher, f"bench-{run_id}-s", opts.rate * 10,
                                 opts.seconds)
            await _settle(urls, idle)
        if opts.memory:
            say(f"memory, {opts.memory} alarms at {max(1, opts.memory // 10)} sites ...")
            memory = await _memory(producer, watcher, urls, idle, f"bench-{run_id}-m",
                                   opts.memory, per_alarm)
    finally:
        await watcher.stop()
        await producer.stop()
    def share(of: dict | None, to: dict | None) -> float | None:
        return (round(of["alarms_per_s"] / to["alarms_per_s"], 3)
                if of and to and to["alarms_per_s"] else None)
    ratio = share(through, relayed)
    return {"run_id": run_id, "cpus": os.cpu_count(), "workers": len(urls),
            "tasks_per_alarm": per_alarm, "departments": departments, "task_bytes": size,
            "throughput": through, "latency": latency, "relay": relayed,
            "ratio": ratio, "faust_relay": faust_relayed,
            "faust_relay_ratio": share(faust_relayed, relayed),
            "ratio_to_faust_relay": share(through, faust_relayed),
            "storm": storm, "memory": memory, "idle_cores": round(idle, 3),
            "targets": {"ratio_min": TARGET_RATIO, "p99_ms_max": TARGET_P99_MS,
                        "fire_ms_max": TARGET_FIRE_MS, "rss_mb_max": TARGET_RSS_MB},
            "met": {"ratio": ratio is not None and ratio >= TARGET_RATIO,
                    "p99": latency["p99_ms"] is not None
                            and latency["p99_ms"] <= TARGET_P99_MS},
            "latencies_ms": [round(x, 3) for x in ms]}


def say(what: str) -> None:
    print(f"whistle bench: {what}", file=sys.stderr, flush=True)


def _profile(pid: int, out: Path) -> subprocess.Popen | None:
    """py-spy recording the worker: a flame graph (.svg), speedscope (.json) or collapsed
    stacks (anything else)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        say("--profile needs py-spy (pip install py-spy); not profiling")
        return None
    kind = {".svg": "flamegraph", ".json": "speedscope"}.get(out.suffix, "raw")
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "200", "--format",
                             kind, "--output", str(out)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            **child_options())


def _stop_profile(spy: subprocess.Popen, out: Path) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
    say(f"profile of the throughput run in {out}" if out.exists()
        else f"py-spy wrote no profile: {(spy.stderr.read() or b'').decode()[-500:]}")


async def _partitions(producer: AIOKafkaProducer) -> int:
    return len(await producer.partitions_for(topics.ALARMS))


def _departments() -> list[str]:
    from playbooks.departments import load_departments

    return sorted(load_departments(Settings().departments).by_id())


def start_worker(broker: str, data: Path, extra: dict[str, str] | None = None
                  ) -> tuple[subprocess.Popen, str]:
    """A worker process on `broker` with its state in `data`; returns it and its URL once
    /readyz answers 200."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "WHISTLE_BROKER": broker, "WHISTLE_PORT": str(port),
           "WHISTLE_HOST": "127.0.0.1", "WHISTLE_DATA": str(data),
           "WHISTLE_LOG_LEVEL": "warning", **(extra or {})}
    log = open(data / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              **child_options())
    log.close()
    url = f"http://127.0.0.1:{port}"
    if answers_ok(f"{url}/readyz", worker, READY_TIMEOUT):
        return worker, url
    tail = (data / "worker.log").read_text(errors="replace")[-3000:]
    stop_process(worker, 3.0)
    raise BrokerError(f"the worker was not ready within {READY_TIMEOUT:.0f} s:\n{tail}")


def _refused(opts: BenchOptions) -> str | None:
    if (opts.broker is None) != (opts.url is None):
        return ("give both --broker and --url (a running deployment), or neither (a fresh "
                "embedded broker and worker)")
    if opts.broker is not None and (opts.workers != 1 or opts.peer or opts.profile):
        return ("--workers, --peer and --profile need the embedded broker and workers this "
                "command starts (no --broker/--url)")
    if opts.peer not in (None, "alertmanager"):
        return f"--peer {opts.peer}: the only peer is alertmanager"
    if opts.workers < 1:
        return "--workers must be at least 1"
    return None


async def _measure_all(opts: BenchOptions, broker: str, urls: list[str], pids: list[int],
                       receiver: Any, alertmanager: Any) -> dict:
    if receiver is None:
        return await _measure(opts, broker, urls, pids)
    from streams.bench.peer import compare

    await receiver.start()  # the workers' webhooks POST to it from the first alarm on
    try:  # the comparison first, before the deadlines of other phases' tasks fall due
        say(f"against Alertmanager: {opts.rate:g}/s for {opts.seconds:g} s, then "
            f"{opts.alarms} alarms, each side POSTed over HTTP to its webhooks ...")
        peer = await compare(urls[0], alertmanager.url, receiver, opts.alarms, opts.rate,
                             opts.seconds)
        figures = await _measure(opts, broker, urls, pids)
        figures["peer"] = peer
    finally:
        await receiver.stop()
    return figures


def process_figures(pid: int) -> dict[str, float]:
    """A process's RSS (MB, 10^6 bytes) and CPU seconds so far, read the way the workers'
    /metrics read their own (prometheus_client's process collector, from /proc)."""
    found = {m.name: m.samples[0].value
             for m in ProcessCollector(pid=lambda: pid, registry=None).collect() if m.samples}
    return {"rss_mb": found["process_resident_memory_bytes"] / 1e6,
            "cpu_s": found["process_cpu_seconds"]}


def time_up(data: Path) -> dict:
    """`whistle up` on a new data directory and then again on the same one (the broker's jars
    cached): seconds from the command to its ready line, each."""
    figures = {}
    for name in ("up_new_s", "up_again_s"):
        started = time.monotonic()
        up = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--port",
                               str(free_port()), "--data", str(data)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, **child_options())
        line = up.stdout.readline()
        figures[name] = time.monotonic() - started
        stop_process(up, 15.0)
        if "ready" not in line:
            raise BrokerError(f"whistle up printed no ready line (exit code {up.returncode})")
    return figures


def run(opts: BenchOptions) -> int:
    """Measure, print the table, write the JSON and SVG. 0 when every task was seen."""
    if (why := _refused(opts)) is not None:
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
                from streams.bench.peer import (Alertmanager, Receiver, alertmanager_config,
                                         webhooks_env)
                from playbooks import load_playbooks

                receiver = Receiver()
                departments = _departments()
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
            urls, target, store = [opts.url], opts.broker, None
            where = f"broker {target}, worker {opts.url}"
        say(where)
        figures = asyncio.run(_measure_all(opts, target, urls, [w.pid for w in workers],
                                           receiver, alertmanager))
        figures["where"], figures["store"] = where, store
        if startup is not None:
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
    """Every task (and webhook) each phase expected was seen."""
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


if __name__ == "__main__" and sys.argv[1:2] in (["relay"], ["faust-relay"]):
    _, _kind, _broker, _source, _targets, _per, _size, _data = sys.argv
    if _kind == "faust-relay":
        faust_relay(_broker, _source, _targets.split(","), int(_per), int(_size), Path(_data))
    else:
        try:
            asyncio.run(relay(_broker, _source, _targets.split(","), int(_per), int(_size)))
        except KeyboardInterrupt:
            pass
