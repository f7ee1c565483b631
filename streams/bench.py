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
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas import Alarm, utc_now

from . import topics
from .broker import BrokerError, EmbeddedBroker, free_port
from .codec import dump
from .procs import child_options, stop_process, stop_started
from .bench_report import TARGET_P99_MS, TARGET_RATIO, svg, table
from .settings import Settings

__all__ = ["BenchOptions", "percentile", "run"]

READY_TIMEOUT = 60.0


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


def _servers(broker: str) -> list[str]:
    return [b.removeprefix("kafka://") for b in broker.split(";")]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100).

        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.0
    """
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def _alarm(site: str, alarm_id: str) -> bytes:
    now = utc_now()
    alarm = Alarm.model_validate({"alarm_id": alarm_id, "kind": "fire_report", "signal": "alarm",
                                  "site_id": site, "occurred_at": now.isoformat()},
                                 context={"now": now})
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
            await c.topics()  # a metadata refresh
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


async def _latency(producer, watcher: Watcher, prefix: str, rate: float, seconds: float,
                   per_alarm: int) -> tuple[dict, list[float]]:
    n = max(1, int(rate * seconds))
    sent: dict[str, float] = {}
    acks = []
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        site = f"{prefix}{i:06d}"
        value = _alarm(site, site)
        sent[site] = time.perf_counter()
        acks.append(await producer.send(topics.ALARMS, value, key=site.encode()))
    await asyncio.gather(*acks)
    sending = time.perf_counter() - start
    seen = await watcher.wait_count(prefix, n * per_alarm, timeout=60.0)
    ms = sorted((watcher.first[s] - t) * 1000 for s, t in sent.items() if s in watcher.first)
    # an alarm never answered counts as slower than any answered one, never as absent
    ranked = ms + [float("inf")] * (n - len(ms))

    def q(p: float) -> float | None:
        v = percentile(ranked, p)
        return None if v == float("inf") else round(v, 2)
    return ({"rate": rate, "seconds": seconds, "alarms": n, "achieved_rate":
             round(n / sending, 1) if sending else 0.0, "alarms_answered": len(ms),
             "tasks_expected": n * per_alarm, "tasks_seen": seen,
             "p50_ms": q(50), "p90_ms": q(90), "p99_ms": q(99), "max_ms": q(100),
             "mean_ms": round(sum(ms) / len(ms), 2) if ms else None}, ms)


# -- the relay: a process of its own, like the worker ------------------------------------------

async def relay(broker: str, source: str, targets: list[str], per_alarm: int, size: int) -> None:
    """Consume `source` from the start, json-decode each alarm, and produce `per_alarm` task
    records of about `size` bytes, one to each of `targets` in turn, keyed by site."""
    servers = _servers(broker)
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
                    alarm = json.loads(r.value)
                    site = alarm["site_id"]
                    for k in range(per_alarm):
                        task = {"task_id": f"{site}.{k}", "incident_id": site,
                                "department": targets[k % len(targets)].rsplit(".", 1)[-1],
                                "site_id": site, "revision": 1, "status": "dispatched"}
                        body = json.dumps(task, separators=(",", ":"))
                        pad = max(0, size - len(body) - 9)
                        task["pad"] = "x" * pad
                        acks.append(await producer.send(
                            targets[k % len(targets)], json.dumps(task, separators=(",", ":"))
                            .encode(), key=site.encode()))
            await asyncio.gather(*acks)
    finally:
        await consumer.stop()
        await producer.stop()


async def _relay_phase(broker: str, producer, run_id: str, n: int, per_alarm: int,
                       departments: list[str], size: int, partitions: int) -> dict:
    servers = _servers(broker)
    base = f"whistle-bench-{run_id}"
    source, targets = f"{base}.alarms", [f"{base}.tasks.{d}" for d in departments]
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    process = None
    watcher = None
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in (source, *targets)])
        watcher = Watcher(servers, targets, "bench-")
        await watcher.start()
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.bench", "relay", broker, source, ",".join(targets),
             str(per_alarm), str(size)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True, **child_options())
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        if line.strip() != "ready":
            raise RuntimeError(f"the relay did not start (exit code {process.poll()})")
        prefix = f"bench-{run_id}-r"
        result = await _throughput(producer, watcher, source, prefix, n, per_alarm)
        return {**result, "task_bytes": size, "topics": [source, *targets]}
    finally:
        if watcher is not None:
            await watcher.stop()
        if process is not None:
            await asyncio.to_thread(stop_process, process, 3.0)
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
        text = httpx.get(f"{url.rstrip('/')}/metrics", timeout=5).text
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


async def _measure(opts: BenchOptions, broker: str, url: str) -> dict:
    run_id = uuid.uuid4().hex[:8]
    servers = _servers(broker)
    names = [topics.task_topic(d) for d in _departments()]
    watcher = Watcher(servers, names, f"bench-{run_id}-")
    await watcher.start()
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
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
        print(f"whistle bench: a fire_report opens one incident and {per_alarm} task(s) "
              f"({', '.join(departments)}), {size} bytes each", file=sys.stderr)

        print(f"whistle bench: throughput, {opts.alarms} alarms ...", file=sys.stderr)
        through = await _throughput(producer, watcher, topics.ALARMS, f"bench-{run_id}-t",
                                    opts.alarms, per_alarm)
        await asyncio.sleep(3.0)  # let the later stages (incidents, timeline) drain
        print(f"whistle bench: latency, {opts.rate:g}/s for {opts.seconds:g} s ...",
              file=sys.stderr)
        before = await asyncio.to_thread(_histogram, url)
        latency, ms = await _latency(producer, watcher, f"bench-{run_id}-l", opts.rate,
                                     opts.seconds, per_alarm)
        latency["worker_histogram"] = _worker_view(before, await asyncio.to_thread(_histogram,
                                                                                    url))
        await watcher.stop()
        relayed = None
        if not opts.skip_relay:
            print(f"whistle bench: plain aiokafka relay, {opts.alarms} alarms ...",
                  file=sys.stderr)
            relayed = await _relay_phase(broker, producer, run_id, opts.alarms, per_alarm,
                                         departments, size, await _partitions(producer))
    finally:
        await watcher.stop()
        await producer.stop()
    ratio = (through["alarms_per_s"] / relayed["alarms_per_s"]
             if relayed and relayed["alarms_per_s"] else None)
    return {"run_id": run_id, "cpus": os.cpu_count(), "tasks_per_alarm": per_alarm,
            "departments": departments, "task_bytes": size, "throughput": through,
            "latency": latency, "relay": relayed,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "targets": {"ratio_min": TARGET_RATIO, "p99_ms_max": TARGET_P99_MS},
            "met": {"ratio": ratio is not None and ratio >= TARGET_RATIO,
                    "p99": latency["p99_ms"] is not None
                            and latency["p99_ms"] <= TARGET_P99_MS},
            "latencies_ms": [round(x, 3) for x in ms]}


async def _partitions(producer: AIOKafkaProducer) -> int:
    return len(await producer.partitions_for(topics.ALARMS))


def _departments() -> list[str]:
    from playbooks.departments import load_departments

    return sorted(load_departments(Settings().departments).by_id())


def _start_worker(broker: str, data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "WHISTLE_BROKER": broker, "WHISTLE_PORT": str(port),
           "WHISTLE_HOST": "127.0.0.1", "WHISTLE_DATA": str(data),
           "WHISTLE_LOG_LEVEL": "warning"}
    log = open(data / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              **child_options())
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return worker, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    tail = (data / "worker.log").read_text(errors="replace")[-3000:]
    stop_process(worker, 3.0)
    raise BrokerError(f"the worker was not ready within {READY_TIMEOUT:.0f} s:\n{tail}")


def run(opts: BenchOptions) -> int:
    """Measure, print the table, write the JSON and SVG. 0 when every task was seen."""
    if (opts.broker is None) != (opts.url is None):
        print("whistle bench: give both --broker and --url (a running deployment), or neither "
              "(a fresh embedded broker and worker)", file=sys.stderr)
        return 2

    def interrupted(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)  # stop the children in order, as for Ctrl-C

    scratch = broker = worker = None
    try:
        if opts.broker is None:
            scratch = Path(tempfile.mkdtemp(prefix="whistle-bench-"))
            broker = EmbeddedBroker(log=scratch / "broker.log").start()
            worker, url = _start_worker(broker.url, scratch)
            where = f"embedded broker {broker.url} (in memory), worker {url} (started here)"
            target = broker.url
        else:
            url, target = opts.url, opts.broker
            where = f"broker {target}, worker {url}"
        print(f"whistle bench: {where}", file=sys.stderr)
        figures = asyncio.run(_measure(opts, target, url))
        figures["where"] = where
    except KeyboardInterrupt:
        print("whistle bench: interrupted", file=sys.stderr)
        return 130
    except (BrokerError, RuntimeError, OSError) as exc:
        print(f"whistle bench: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_started(worker, broker, scratch)
    print(table(figures))
    if opts.json is not None:
        opts.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    if opts.svg is not None:
        opts.svg.write_text(svg(figures["latencies_ms"], figures["latency"]), encoding="utf-8")
    complete = (figures["throughput"]["tasks_seen"] >= figures["throughput"]["tasks_expected"]
                and figures["latency"]["tasks_seen"] >= figures["latency"]["tasks_expected"]
                and (figures["relay"] is None
                     or figures["relay"]["tasks_seen"] >= figures["relay"]["tasks_expected"]))
    return 0 if complete else 1



if __name__ == "__main__" and sys.argv[1:2] == ["relay"]:
    _, _, _broker, _source, _targets, _per, _size = sys.argv
    try:
        asyncio.run(relay(_broker, _source, _targets.split(","), int(_per), int(_size)))
    except KeyboardInterrupt:
        pass
