"""Tables whose changelog records a stage sends itself, straight to the producer, once its
message is handled.

Faust sends each table write's changelog record through its producer buffer: a queue, a
task that takes one record at a time from it, a pending message, sensors and a callback
each. Issue 21's profile put 11% of a loaded worker's time there, for 6 of the 15 records
a new incident makes. Here a write made while a stage handles a message is serialized as
Faust would and kept; `changes()` sends them when the handler is done, each to the partition
Faust chose, and records each one's offset as Faust does (RocksDB keeps it, so a restart
reads the changelog only from there).

    with changes() as written:          # the stage wrapper, around one message
        await handle(...)               # table[key] = value: kept in `written`
    await written.send(app)             # before the next message: on the producer's batch

Faust flushes the producer before it commits an input's offset, so a change is on the
broker before its input counts as done, as it was. A write outside a stage, and the global
`playbook-versions` table (another class), go Faust's own way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

import faust
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faust.exceptions import NotReady
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.utils import json as faust_json
from mode.utils.compat import want_bytes

from streams.runtime import store, transport
from streams.runtime.produce import enqueue

__all__ = ["Changes", "Table", "changes", "in_stage", "until_taken"]

log = logging.getLogger(__name__)
T = TypeVar("T")
GENERATION = "whistle-generation"  # header: the writer's epoch on the partition (Table)


async def until_taken(send: Callable[[], Awaitable[T]], what: str) -> T:
    """`await send()`, again while the producer refuses for want of room: its buffer stayed
    full for a whole `produce_timeout` because the brokers take nothing (a cluster without
    enough brokers, a worker cut off). The stage waits for the brokers, as backpressure: a
    message is neither failed nor dead-lettered for it, and the agent does not crash."""
    stalled = None
    while True:
        try:
            taken = await send()
        except KafkaTimeoutError:
            if stalled is None:
                stalled = time.monotonic()
                log.warning("the brokers take no records (%s): waiting for them", what)
            await asyncio.sleep(0.1)
            continue
        if stalled is not None:
            log.warning("the brokers take records again (%s) after %.1f s", what,
                        time.monotonic() - stalled)
        return taken


def _json(value: Any) -> bytes:
    """What Faust's "json" codec makes of `value` (`faust.serializers.codecs.json`)."""
    return want_bytes(faust_json.dumps(value))

_KEPT: ContextVar[Changes | None] = ContextVar("whistle_changes", default=None)


@dataclass(slots=True)
class _Sent:
    """What Faust's `on_key_set` reads of a sent changelog record: its partition."""

    message: Any


@dataclass(slots=True)
class _Partition:
    partition: int


@dataclass
class Changes:
    """The changelog records of one handled message: (table, partition, key, value, as
    serialized key, value and headers, and the writer's epoch on the partition)."""

    kept: list[tuple[Any, int, Any, Any, Any, Any, Any, int | None]] = field(
        default_factory=list)

    async def send(self, app: faust.App) -> None:
        """Hand every kept record to the app's aiokafka producer (not waiting for the
        broker); Faust's way while that producer has not started (Faust's test context)."""
        try:
            producer = cast(driver.Producer, app.producer)._ensure_producer()
        except NotReady:
            self.hand_back()
            return
        generation = getattr(app, "consumer_generation_id", -1)
        while self.kept:  # one at a time: if the producer refuses one, the rest stay kept
            table, partition, _key, _value, key, value, headers, epoch = self.kept[0]
            name = table.changelog_topic.get_topic_name()
            stamp = (GENERATION, str(generation if epoch is None else epoch).encode())
            try:
                sent = await until_taken(partial(
                    enqueue, producer, name, key, value, partition,
                    [*(headers.items() if headers else ()), stamp]), name)
            except KafkaError as exc:  # refused for good (too large): the agent goes on
                log.error("changelog record for %s[%s] refused: %r; the table holds the "
                          "value, its changelog does not", name, partition, exc)
            else:
                sent.add_done_callback(partial(_persisted, table, TP(name, partition),
                                               app, generation))
                transport.watched(app, sent, name)
            del self.kept[0]

    def hand_back(self) -> None:
        """Send what is kept Faust's way (a stage stopped mid-message: no await left)."""
        kept, self.kept = self.kept, []
        for table, partition, key, value, *_ in kept:
            faust.Table.send_changelog(table, partition, key, value)


RESET_GAP = 86_400.0
"""Seconds without a record on a changelog partition after which a record of an older writer
generation is a new group's, not a zombie's: Kafka forgets an empty group (and its next one
begins at generation 1) only after `offsets.retention.minutes`, 7 days by default, without a
member, so without a write."""


@dataclass(slots=True)
class Fence:
    """What a changelog partition's reader has seen: the newest writer generation, the time
    of the last record kept, and the last offset read."""

    generation: int = -1
    last: float = 0.0
    offset: int = -1


def _generation(headers: Any) -> int | None:
    """The writer generation a changelog record carries (None: a record without it)."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    for key, value in pairs:
        if key == GENERATION:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _persisted(table: Any, tp: TP, app: Any, generation: int, sent: Any) -> None:
    """Record the offset of a changelog record the broker took (as Faust's callback does);
    one it did not take (the producer gave up) is logged, as Faust's callback would raise.

    Not when the group has moved on since the record was sent: a worker that was cut off
    would otherwise mark its late records as where its store stands, and on getting the
    partition back read the changelog only from past them, missing its successor's records
    before them (the reader fences the late records themselves). A record of a rebalance
    that left the partition here is only read once more."""
    if sent.cancelled():
        return
    if sent.exception() is not None:
        log.error("changelog record for %s not written: %r", tp, sent.exception())
        return
    if getattr(app, "consumer_generation_id", -1) != generation or sent.result().offset < 0:
        return  # (an offset below 0: the broker had the batch already and did not say where)
    table.data.set_persisted_offset(tp, sent.result().offset)


def in_stage() -> bool:
    """Whether a stage is handling a message here (inside `changes()`)."""
    return _KEPT.get() is not None


@contextmanager
def changes() -> Iterator[Changes]:
    """Keep the changelog records of table writes made inside (see the module's text)."""
    kept = Changes()
    token = _KEPT.set(kept)
    try:
        yield kept
    finally:
        _KEPT.reset(token)


class Table(faust.Table):
    """A Faust table whose changelog records a stage sends itself (see the module's text),
    and which reads its changelog past a zombie's records (`fenced`)."""

    _fences: dict[int, Fence] | None = None
    _epochs: dict[int, int] | None = None  # changelog partition -> this worker's epoch on it
    _generation: int = -1  # of the last rebalance this worker took part in

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
                           generation_id: int = 0) -> None:
        """Note each changelog partition's epoch here: the generation since which this
        worker has held it, rebalance after rebalance. Its records carry that epoch, taken
        when the stage writes (GENERATION), not the generation when they are sent: two stages
        writing a partition kept through a rebalance stamp the same, whichever sends first,
        and a stage held up across a rebalance (a worker cut off) stamps the epoch it wrote
        in, which the next owner's is above. After a generation this worker was not part of
        (dropped from the group meanwhile), every partition's epoch begins again."""
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        before = self._epochs or {}
        kept = before if generation_id == self._generation + 1 else {}
        self._epochs = {partition: kept.get(partition, generation_id)
                        for partition in store.held(self, assigned)}
        self._generation = generation_id

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        super().apply_changelog_batch(self.fenced(batch))

    def fenced(self, batch: Iterable[Any]) -> list[Any]:
        """The changelog records of `batch` without those a worker wrote after its partition
        had moved on: a worker cut off from the brokers keeps the records it had not yet
        sent, and sends them once it is back, after the records of the worker that took its
        partitions over; it may even handle the message in hand in the moment it is back,
        before it learns it is out. Read last, those records would undo the new owner's
        changes (seen: alarms the new owner attached, gone from their incident once the
        partition moved again).

        Each record carries its writer's epoch on the partition (GENERATION, a consumer-group
        generation: `on_rebalance`). A record of an older epoch than one kept before it is a
        zombie's, and is skipped, whenever it was made: its input was never committed (a
        commit of the older generation is refused once the newer one exists), so the new
        owner handled it again. Only after RESET_GAP without a record is an older generation a
        group begun again."""
        if self._fences is None:
            self._fences = {}
        kept = []
        for event in batch:
            message = event.message
            fence = self._fences.get(message.partition)
            if fence is None or message.offset <= fence.offset:  # read from the start again
                fence = self._fences[message.partition] = Fence()
            fence.offset = message.offset
            generation = _generation(message.headers)
            if generation is not None:
                if (generation < fence.generation
                        and message.timestamp < fence.last + RESET_GAP):
                    log.warning("%s[%s]@%s skipped: written by generation %s after "
                                "generation %s took the partition over", message.topic,
                                message.partition, message.offset, generation,
                                fence.generation)
                    continue
                fence.generation = generation
            fence.last = max(fence.last, message.timestamp)
            kept.append(event)
        return kept

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of `key`, read once. Faust's `get` (collections.abc's) asks the store
        whether it holds the key and then reads it, two RocksDB reads, and for a key not
        there raises KeyError inside; a stage reads 5-6 keys an alarm, most not there yet."""
        if self.default is not None:  # a table that makes its missing values: Faust's way
            return super().get(key, default)
        self.on_key_get(key)
        try:
            return self.data[key]
        except KeyError:
            return default

    def send_changelog(self, partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None) -> Any:
        if partition is not None and isinstance(self.data, store.Store):
            self.data.written(key, partition)
        kept = _KEPT.get()
        if kept is None or partition is None or key_serializer or value_serializer:
            return super().send_changelog(partition, key, value, key_serializer,
                                          value_serializer)
        if self.key_serializer == "json" and self.value_serializer == "json":
            # the bytes Faust's json codec makes, without its schema and registry lookups
            # (4% of a loaded worker's time for the keys and values of 9 writes an incident)
            raw_key, raw_value, headers = _json(key), _json(value), None
        else:
            topic = cast(Any, self.changelog_topic)  # Faust's Topic; ChannelT declares less
            headers = topic.prepare_headers(None)
            raw_key, headers = topic.prepare_key(key, self.key_serializer, None, headers)
            raw_value, headers = topic.prepare_value(value, self.value_serializer, None,
                                                     headers)
        epoch = self._epochs.get(partition) if self._epochs is not None else None
        kept.kept.append((self, partition, key, value, raw_key, raw_value, headers, epoch))
        return _Sent(_Partition(partition))
