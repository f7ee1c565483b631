"""Warming a freshly started broker before anything is measured on it.

A new JVM runs Kafka's request paths interpreted at first and compiles them as they get hot;
the compiler threads take the same two cores the worker and the bench use. On this 2-core
machine a fresh embedded broker spent 5.2 s of CPU on the first 600 alarms sent at 200/s,
then 3.9, 2.3 and 1.3 s on the next three rounds of 600 (`/proc/<pid>/stat`), and the
alarm-to-task p50 fell with it from 12.2 to 3.8 ms; the worker's CPU stayed at 1.7-1.9 s a
round. Measured on a cold broker, the first phases judge the JVM's start, not the pipeline, and
the relays that run later get a warmer broker than the pipeline did. A broker that has run for
a while (`deploy/`, or `--broker`) is warm, so `whistle bench` warms the one it starts.

Plain records through the broker (15 s at 600/s, acks=all, read back) warmed it only partly:
the next 600 alarms still cost it 2.7 s and their p50 was 6.3 ms. The pipeline's own traffic
(a consumer group fetching many partitions, an idempotent producer writing many, offset
commits) takes paths those do not: after 15 s of alarms at 200/s through the pipeline, 1.8 s
and 4.0 ms, then 1.5 s and 3.4 ms. So the warm-up is alarms through the pipeline, at a steady
rate, of a kind no playbook names (`WARM_KIND`: the fallback playbook, whose first deadline is
5 minutes away, not the fire playbooks' 30 s) at a few sites: they open a hundred incidents (the
memory phase weighs the worker with its open incidents), escalate 5 minutes later at the
soonest (a hundred escalations, in the last minutes of a `--memory` run at most), and no
measured phase counts them (their sites are their own).

    figures = await warm(["127.0.0.1:9092"], seconds=15, rate=WARM_RATE)
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer

from schemas import topics
from streams.bench.basics import paced
from streams.bench.traffic import Watcher, alarm
from streams.bench.workers import departments

__all__ = ["WARM_KIND", "WARM_RATE", "WARM_SITES", "warm"]

WARM_RATE = 200.0  # alarms a second: the rate the issue judges latency at
WARM_KIND = "bench_warm_up"
WARM_SITES = 100


async def warm(servers: list[str], seconds: float, rate: float) -> dict:
    """`seconds` of alarms at `rate` a second through the pipeline on the broker at `servers`,
    at `WARM_SITES` sites of their own; returns how many were sent, and how long it took
    until each site's first task was read back (or 30 s more passed).

        figures = await warm(["127.0.0.1:9092"], 15, WARM_RATE)   # {"alarms": 3000, ...}
    """
    prefix = f"bench-warm-{uuid.uuid4().hex[:8]}-"
    watcher = Watcher(servers, [topics.task_topic(d) for d in departments()], prefix)
    await watcher.start()
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        return await _send(producer, watcher, prefix, seconds, rate)
    finally:
        await producer.stop()
        await watcher.stop()


async def _send(producer: AIOKafkaProducer, watcher: Watcher, prefix: str, seconds: float,
                rate: float) -> dict:
    n = max(1, int(seconds * rate))
    sites = min(n, WARM_SITES)
    acks = []
    started = time.perf_counter()
    async for i in paced(n, rate):
        site = f"{prefix}{i % sites:04d}"
        acks.append(await producer.send(topics.ALARMS, alarm(site, f"{prefix}{i:06d}",
                                                              kind=WARM_KIND),
                                        key=site.encode()))
    await asyncio.gather(*acks)
    deadline = time.monotonic() + 30.0
    while len(watcher.first) < sites and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return {"seconds": round(time.perf_counter() - started, 1), "rate": rate, "alarms": n,
            "sites": sites, "sites_answered": len(watcher.first)}
