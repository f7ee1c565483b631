"""What the bench reads off the workers while it runs: their /metrics (CPU so far, RSS, the
alarm-to-task histogram), and the waits built on them (idle CPU, settling after a phase); and
a process's RSS and CPU read from /proc the same way, for the embedded broker.

    idle = await idle_rate(urls)          # cores used by polling alone
    ...                                   # a phase
    waited = await settle(urls, idle)     # the later stages have drained
"""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client import ProcessCollector

__all__ = ["cpu", "histogram", "idle_rate", "process_figures", "scrape", "settle",
           "worker_view"]

_SCRAPER = httpx.Client(timeout=5)  # one client: a new one costs more CPU than the scrape


def histogram(url: str) -> dict[float, float]:
    """The worker's `whistle_alarm_to_task_seconds` buckets (upper bound -> cumulative count);
    empty when /metrics does not answer.

        before = histogram("http://127.0.0.1:6066")
    """
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


def worker_view(before: dict[float, float], after: dict[float, float]) -> dict | None:
    """The upper bucket bounds (ms) holding the worker's own p50 and p99 over the run.

        worker_view(before, histogram(url))   # {"observations": 150, "p50_le_ms": 5.0, ...}
    """
    diff = sorted((b, after[b] - before.get(b, 0.0)) for b in after)
    if not diff or diff[-1][1] <= 0:
        return None
    total = diff[-1][1]

    def bound(q: float) -> float | None:
        b = next(b for b, c in diff if c >= total * q)
        return None if b == float("inf") else b * 1000
    return {"observations": int(total), "p50_le_ms": bound(0.5), "p99_le_ms": bound(0.99)}


def scrape(url: str, name: str) -> float | None:
    """The sum of an unlabelled series (e.g. `process_cpu_seconds_total`) on the worker's
    /metrics, or None when it does not answer.

        rss = scrape("http://127.0.0.1:6066", "process_resident_memory_bytes")
    """
    try:
        text = _SCRAPER.get(f"{url.rstrip('/')}/metrics").text
    except httpx.HTTPError:
        return None
    found = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith(name + " ")]
    return sum(found) if found else None


async def cpu(urls: list[str]) -> float | None:
    """CPU seconds the workers have used so far (their `process_cpu_seconds_total`).

        used = await cpu(urls)
    """
    used = [await asyncio.to_thread(scrape, u, "process_cpu_seconds_total") for u in urls]
    answered = [u for u in used if u is not None]
    return sum(answered) if len(answered) == len(used) else None


async def idle_rate(urls: list[str], seconds: float = 2.0) -> float:
    """The workers' CPU use (cores) when nothing is sent: their consumers' polling.

        idle = await idle_rate(urls)
    """
    before = await cpu(urls)
    await asyncio.sleep(seconds)
    after = await cpu(urls)
    return 0.0 if before is None or after is None else (after - before) / seconds


async def settle(urls: list[str], idle: float, timeout: float = 180.0) -> float:
    """Wait until the workers are back to about their `idle` CPU use (within 10% of a core)
    for two seconds in a row: the later stages have drained. Returns the seconds waited.

        drained = await settle(urls, idle)
    """
    started = time.monotonic()
    last = await cpu(urls)
    quiet = 0
    while last is not None and time.monotonic() - started < timeout and quiet < 2:
        await asyncio.sleep(1.0)
        now = await cpu(urls)
        quiet = quiet + 1 if now is not None and now - last <= idle + 0.1 else 0
        last = now
    return round(time.monotonic() - started, 1)


def process_figures(pid: int) -> dict[str, float]:
    """A process's RSS (MB, 10^6 bytes) and CPU seconds so far, read the way the workers'
    /metrics read their own (prometheus_client's process collector, from /proc).

        process_figures(broker.process.pid)   # {"rss_mb": 412.3, "cpu_s": 38.1}
    """
    found = {m.name: m.samples[0].value
             for m in ProcessCollector(pid=lambda: pid, registry=None).collect() if m.samples}
    return {"rss_mb": found["process_resident_memory_bytes"] / 1e6,
            "cpu_s": found["process_cpu_seconds"]}
