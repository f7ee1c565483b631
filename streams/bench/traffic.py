"""Both ends of every measured run: the alarms `whistle bench` produces and the tasks it reads
back from department topics, and the burst between them that throughput is timed over (the
Whistle pipeline's and the relay's alike).

    watcher = Watcher(servers, [topics.task_topic(d) for d in departments], "bench-1-")
    await watcher.start()
    figures = await throughput(producer, watcher, topics.ALARMS, "bench-1-t", 5000, per_alarm)
    await watcher.stop()
"""

from __future__ import annotations

import asyncio
import json
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import Alarm, utc_now
from schemas.codec import dump

__all__ = ["Watcher", "alarm", "produce", "throughput"]


def alarm(site: str, alarm_id: str, kind: str = "fire_report",
          device: str | None = None) -> bytes:
    """An alarm as the HTTP ingest puts it on `whistle.alarms` (received now), encoded.

        value = alarm("bench-1-t000001", "bench-1-t000001")
    """
    now = utc_now()
    a = Alarm.model_validate({"alarm_id": alarm_id, "kind": kind, "signal": "alarm",
                              "site_id": site, "device_id": device,
                              "occurred_at": now.isoformat()}, context={"now": now})
    return dump(a.model_copy(update={"received_at": now}))


class Watcher:
    """Reads task topics from their current end and notes, per site, when its first task
    (revision 1) arrived and which task ids it had.

        watcher = Watcher(servers, ["whistle.tasks.fire"], "bench-1-")
        await watcher.start()
        seen = await watcher.wait_count("bench-1-l", expected=200, timeout=60)
    """

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
            except TimeoutError:
                pass

    async def stop(self) -> None:
        task, consumer, self._task, self._consumer = self._task, self._consumer, None, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if consumer is not None:
            await consumer.stop()


async def produce(producer: AIOKafkaProducer, topic: str,
                  items: list[tuple[str, bytes]]) -> None:
    """Send every (site, value) onto `topic` keyed by site, then wait for all their acks.

        await produce(producer, topics.ALARMS, [(site, alarm(site, site))])
    """
    acks = [await producer.send(topic, value, key=site.encode()) for site, value in items]
    await asyncio.gather(*acks)


async def throughput(producer: AIOKafkaProducer, watcher: Watcher, topic: str, prefix: str,
                     n: int, per_alarm: int) -> dict:
    """`n` fire reports at `n` distinct sites produced onto `topic` at once, timed from the
    first send until the `n * per_alarm` tasks they cause were read back.

        figures = await throughput(producer, watcher, topics.ALARMS, "bench-1-t", 5000, 2)
    """
    items = [(f"{prefix}{i:06d}", alarm(f"{prefix}{i:06d}", f"{prefix}{i:06d}"))
             for i in range(n)]
    started = time.perf_counter()
    await produce(producer, topic, items)
    produced = time.perf_counter() - started
    expected = n * per_alarm
    seen = await watcher.wait_count(prefix, expected, timeout=max(60.0, n / 20))
    elapsed = max(0.0, watcher.last_at - started)
    return {"alarms": n, "tasks_expected": expected, "tasks_seen": seen,
            "produced_s": round(produced, 3), "elapsed_s": round(elapsed, 3),
            "alarms_per_s": round(n / elapsed, 1) if elapsed > 0 else 0.0,
            "tasks_per_s": round(seen / elapsed, 1) if elapsed > 0 else 0.0}
