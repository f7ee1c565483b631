"""The urgent lane: people's fire reports read ahead of a backlog on `whistle.alarms`.

A storm (a heat wave, a power surge across a district) can put minutes of smoke alarms ahead
of the one person who calls in a real fire. Each worker therefore reads its own partitions of
`whistle.alarms` a second time, from its group's committed offset on, with a plain consumer
that only looks at each record: an alarm a person raised (`PEOPLE_KINDS`, signal `alarm`) is
copied, same key and bytes, to `whistle.alarms.urgent`, whose triage and dispatch agents have
nothing else to do. Whichever copy triage sees first decides; the other is a retry of it.

A copy is made only where it helps and never floods the lane: when the worker's triage is
more than `LEAD` records behind in that partition, and while fewer than `IN_FLIGHT` copies
wait on the urgent lane (a storm of fire reports stays on the ordinary lane, not on both).
Reading ahead costs one fetch and a byte search per alarm; nothing is committed, so after a
restart or a rebalance the backlog is read ahead again (copies triage has decided are retries).

    >>> urgent(b'{"kind": "fire_report", "signal": "alarm"}')
    True
    >>> urgent(b'{"kind": "smoke", "signal": "alarm"}')
    False
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.logic.correlation import PEOPLE_KINDS
from schemas import topics
from schemas.topics import ORIGIN
from streams.kafka.broker import bootstrap_servers

Send = Callable[[str, str, bytes, list[tuple[str, bytes]]], Awaitable[object]]

__all__ = ["Lookahead", "urgent"]

log = logging.getLogger(__name__)

LEAD = 10
"""Records triage may still have to go in a partition before an urgent alarm is copied."""

IN_FLIGHT = 20
"""Copies at most waiting on the urgent lane."""

PAUSE = 0.25
"""Seconds between looks while triage keeps up (no backlog, nothing to pass)."""

FETCH_WAIT_MS = 100

_MARKS = tuple(f'"{kind}"'.encode() for kind in sorted(PEOPLE_KINDS))


def urgent(value: bytes | None) -> bool:
    """Whether an alarm's bytes are a person's alarm (bad bytes are not: triage says why)."""
    if not value or not any(mark in value for mark in _MARKS):
        return False
    try:
        alarm = json.loads(value)
    except ValueError:
        return False
    return (isinstance(alarm, dict) and alarm.get("kind") in PEOPLE_KINDS
            and alarm.get("signal", "alarm") == "alarm")


class Lookahead:
    """Follows the worker's assignment of `whistle.alarms` and copies urgent alarms."""

    def __init__(self, app: faust.App, broker: str, group_id: str, send: Send,
                 counted: Callable[[], None]) -> None:
        self.app, self.broker, self.group_id = app, broker, group_id
        self.send, self.counted = send, counted
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned: frozenset[int] = frozenset()
        self.reached: dict[int, int] = {}  # partition -> the last offset triage took
        self.copied = self.taken = 0       # copies made, and taken by the urgent lane

    def passed(self, partition: int, offset: int) -> None:
        """Triage took this record of `whistle.alarms`."""
        self.reached[partition] = offset

    def behind(self, partition: int, offset: int) -> bool:
        """Whether triage has more than `LEAD` records to go before the one at `offset`."""
        return offset > self.reached.get(partition, -1) + LEAD

    def wanted(self) -> frozenset[int]:
        app = self.app
        try:
            assignment = app.consumer.assignment()
        except Exception:  # not started yet
            return frozenset()
        return frozenset(tp.partition for tp in assignment if tp.topic == topics.ALARMS)

    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self.broker),
            group_id=self.group_id, enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_WAIT_MS, auto_offset_reset="earliest")
        await self.consumer.start()
        try:
            while True:
                await self._follow()
                if not self.assigned:
                    await asyncio.sleep(0.5)
                    continue
                batches = await self.consumer.getmany(timeout_ms=500, max_records=500)
                backlog = False
                for records in batches.values():
                    for record in records:
                        behind = self.behind(record.partition, record.offset)
                        backlog = backlog or behind
                        if behind and urgent(record.value) and self.copied - self.taken < IN_FLIGHT:
                            await self.send(
                                topics.ALARMS_URGENT,
                                (record.key or b"").decode("utf-8", "replace"), record.value,
                                [(ORIGIN, f"{record.partition}:{record.offset}".encode())])
                            self.copied += 1
                            self.counted()
                if not backlog:  # triage keeps up: look again in a while, at little cost
                    await asyncio.sleep(PAUSE)
        finally:
            await self.consumer.stop()

    async def run_forever(self) -> None:
        """Run, and run again a second after the broker went away: the lane waits meanwhile,
        triage goes on."""
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading ahead stopped; starting again in 1 s")
                self.assigned = frozenset()
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        """Read what the worker was assigned: a partition it keeps from where this read
        was, a new one from the group's committed offset (where the worker's triage goes on
        from)."""
        wanted = self.wanted()
        consumer = self.consumer
        if wanted == self.assigned or consumer is None:
            return
        kept = {p: await consumer.position(TopicPartition(topics.ALARMS, p))
                for p in self.assigned & wanted}
        tps = [TopicPartition(topics.ALARMS, p) for p in sorted(wanted)]
        consumer.assign(tps)
        for tp in tps:
            offset = kept.get(tp.partition)
            if offset is None:
                offset = await consumer.committed(tp)
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        self.assigned = wanted
        log.info("reading ahead on %s partition(s) of %s", len(wanted), topics.ALARMS)
