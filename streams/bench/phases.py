"""The measuring phases of `whistle bench` beyond the plain burst (`traffic.throughput`), each
sending alarms onto `whistle.alarms` and timing the tasks a `Watcher` reads back: latency at a
steady rate, a fire report in the middle of a storm, and the workers' memory after many open
incidents.

    figures, ms = await latency(producer, watcher, "bench-1-l", rate=200, seconds=10,
                                per_alarm=2)
    fire = await storm(producer, watcher, "bench-1-s", rate=2000, seconds=10)
    rss = await memory(producer, watcher, urls, idle, "bench-1-m", 100_000, per_alarm=2)
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer

from schemas import topics
from streams.bench.basics import paced, percentile
from streams.bench.metrics import scrape, settle
from streams.bench.report import TARGET_FIRE_MS, TARGET_RSS_MB
from streams.bench.traffic import Watcher, alarm, produce

__all__ = ["WARM_UP", "latency", "memory", "storm"]

WARM_UP = 1.0  # seconds at the start of the latency run kept out of its percentiles


async def latency(producer: AIOKafkaProducer, watcher: Watcher, prefix: str, rate: float,
                  seconds: float, per_alarm: int) -> tuple[dict, list[float]]:
    """`seconds` of alarms at `rate` after a first second of warm-up at the same rate; the
    percentiles are the steady state's, the warm-up's slowest is reported beside them (the
    first alarms after an idle spell wait ~0.1-0.2 s on the embedded broker). Returns the
    figures and the answered alarms' latencies (ms, ascending).

        figures, ms = await latency(producer, watcher, "bench-1-l", 200, 10, per_alarm=2)
    """
    warm = int(rate * WARM_UP)
    n = max(1, int(rate * seconds)) + warm
    sent: dict[str, float] = {}
    acks = []
    start = time.perf_counter()
    async for i in paced(n, rate):
        site = f"{prefix}{i:06d}"
        value = alarm(site, site)
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


async def storm(producer: AIOKafkaProducer, watcher: Watcher, prefix: str, rate: float,
                seconds: float) -> dict:
    """Smoke alarms from devices at many sites at `rate` for `seconds`, and halfway through a
    person's fire report at a site of its own (confirmed at once): how soon its first task
    is out, against GB 50440's 3 s.

        figures = await storm(producer, watcher, "bench-1-s", rate=2000, seconds=10)
    """
    n = max(1, int(rate * seconds))
    sites = max(1, n // 5)  # five alarms a site: the first opens an incident, the rest join it
    fire = f"{prefix}fire"
    fire_sent = None
    acks = []
    start = time.perf_counter()
    async for i in paced(n, rate):
        if fire_sent is None and i >= n // 2:
            fire_sent = time.perf_counter()
            acks.append(await producer.send(topics.ALARMS, alarm(fire, fire), key=fire.encode()))
        site = f"{prefix}{i % sites:06d}"
        value = alarm(site, f"{prefix}a{i:07d}", kind="smoke", device=f"{site}-smk")
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


async def memory(producer: AIOKafkaProducer, watcher: Watcher, urls: list[str], idle: float,
                 prefix: str, n: int, per_alarm: int) -> dict:
    """`n` fire reports at n/10 sites (one open incident each, the other nine join it); the
    workers' RSS once every incident has its tasks and the workers are idle.

        figures = await memory(producer, watcher, urls, idle, "bench-1-m", 100_000, 2)
    """
    sites = max(1, n // 10)
    items = [(f"{prefix}{i % sites:06d}", alarm(f"{prefix}{i % sites:06d}", f"{prefix}a{i:07d}"))
             for i in range(n)]
    started = time.perf_counter()
    await produce(producer, topics.ALARMS, items)
    await watcher.wait_count(prefix, sites * per_alarm, timeout=max(120.0, n / 50))
    opened = sum(1 for site in watcher.tasks if site.startswith(prefix))
    await settle(urls, idle, timeout=max(120.0, n / 100))
    rss = [await asyncio.to_thread(scrape, u, "process_resident_memory_bytes") for u in urls]
    mb = round(sum(r for r in rss if r) / 1e6, 1) if all(rss) else None  # MB, as the target
    return {"alarms": n, "incidents": sites, "incidents_with_tasks": opened,
            "elapsed_s": round(time.perf_counter() - started, 1), "rss_mb": mb,
            "rss_mib": round(sum(r for r in rss if r) / 2**20, 1) if all(rss) else None,
            "rss_mb_per_worker": [round(r / 1e6, 1) for r in rss if r],
            "met": mb is not None and mb <= TARGET_RSS_MB}
