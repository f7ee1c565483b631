"""A Faust Kafka transport whose consumer runs in the worker's loop (`inline`), long-polls for
milliseconds, not 1.5 s, hands out what it fetched fairly, the urgent lane first, and never
acknowledges what it fetched before a rebalance.

Faust hard-codes `fetch_max_wait_ms=1500`: a two-agent chain took ~600 ms per alarm at the
median on the embedded broker; ~11 ms with 10 ms (long polls while all is asked: `longpoll`).

aiokafka hands out fetched records partition by partition in the order they were fetched, up
to `max_poll_records`: in a storm, a partition fetched later (the urgent lane's) waited for
every earlier partition's buffer (3-11 s in `whistle bench`'s storm). Here the partitions of
`app.first_topics` go first, and a partition handed out from goes behind the others.

Rebalances. `tests/deploy/test_workers.py` (a worker stopped mid-run, the other takes over)
lost 2 to 28 of 200 alarms in 3 of 8 runs with a core busy beside it (4 of 5 with the test's
own busy core; 13 in the CI run that found it), on the survivor's own partitions as well as
those it took over. Traced in the survivor, Faust 0.15 loses a message four ways when a
rebalance falls between fetching it and processing it:
- a stream skips a message of an earlier generation, or one it meets while the flow is stopped,
  and *acknowledges* it: the commit at the rebalance passes it although nobody processed it;
- the drain loop records a message handed out across the seek to the committed offset as read,
  so the same offsets fetched again after the seek are dropped as read already, and the
  recorded offset opens a "gap" (meant for compacted topics) that counts as acknowledged;
- at the end of a rebalance Faust resumes the streams' partitions, seeks to the committed
  offsets and then lets the streams run, which empties their queues: what was handed out during
  the seek is gone, never acknowledged, and the committed offset stays before it for good.
Here a message fetched before its partition was last sought (counted where aiokafka seeks) is
not handed out and does not move the read offset; a stream's message waits until the rebalance
is over; one of an earlier generation, or met while the flow is stopped, is never acknowledged.
Every rebalance ends with a seek to the committed offset, so such a message is read again from
there, processed (again, if it was: every stage is idempotent) and acknowledged then. With all
four closed, 12 of 12 loaded runs lost nothing. (faust-streaming issues #221, #312, #606.)

Commits. A CI run of the cluster chaos test lost a partition's first six merge updates across
a broker kill: nothing was committed on it yet, and aiokafka's seek to the committed offsets
leaves such a partition where it is; Faust then commits the first run of acknowledged offsets
wherever it begins (and, once something is committed, one past an unacknowledged offset).
Here every stream partition is sought at the end of a rebalance, to its committed offset or
else its first; a commit covers only acknowledged offsets from there on; and a hole in the
offsets handed out (none in the topics Whistle's streams read) seeks back to it.

Subscribing. Faust subscribes as soon as it created its topics, but a broker answers
CreateTopics before its metadata lists them: the group's leader assigned without the topic
created last ("Ignoring missing topic"), and aiokafka reads metadata again only after
`consumer_metadata_max_age_ms`, 5 minutes, consuming nothing of it meanwhile (3 of 15 fresh
stacks under load). Here it subscribes once the metadata lists every topic with leaders.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from functools import partial
from typing import Any, cast

import faust.streams
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver

from streams.runtime import longpoll, membership
from streams.runtime.eager import eager
from streams.runtime.inline import InlineThread

__all__ = ["Transport", "Undelivered", "watched"]

REFUSED = (MessageSizeTooLargeError, RecordTooLargeError)  # the record's: refused if sent again

METADATA_WAIT = 30.0
"""Seconds a subscription waits at most for the broker's metadata to list its topics."""

# Faust's compiled stream iterator acknowledges a message inline, past `Consumer.ack`, so the
# refusal below would not hold; its pure-Python twin calls `Consumer.ack`.
faust.streams._CStreamIterator = None


class _ConsumerThread(InlineThread, membership.Leaving, driver.AIOKafkaConsumerThread):
    consumer: _Consumer  # what `_Consumer._new_consumer_thread` hands it
    changelogs: set[str] = set()  # noqa: RUF012 (replaced, never changed in place)

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_wait_ms", 1500)  # read at start()
        return consumer

    async def _fetch_records(self, consumer: Any, active_partitions: Any,
                             timeout: float | None = None, max_records: int | None = None) -> Any:
        if not self.changelogs:  # the tables' changelog topics, once they are known
            self.changelogs = set(self.app.tables.changelog_topics)
        _pause_idle_changelogs(consumer, active_partitions, self.changelogs)
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None and not getattr(fetcher, "whistle_counts_seeks", False):
            _count_seeks(fetcher, self.consumer.seeks)
            longpoll.adapt(fetcher, short_ms=consumer._fetch_max_wait_ms)
        fetched = getattr(fetcher, "_records", None)
        first = getattr(self.app, "first_topics", ())
        if fetched and first:
            for tp in [tp for tp in fetched if tp.topic in first]:
                fetched.move_to_end(tp, last=False)
        drained = await super()._fetch_records(consumer, active_partitions, timeout=timeout,
                                               max_records=max_records)
        if fetched and drained:
            for tp in drained:
                if tp in fetched:
                    fetched.move_to_end(tp)
        seeks = self.consumer.seeks
        self.consumer.fetched_after = {tp: seeks[tp] for tp in drained or ()}
        return drained

    async def seek_to_committed(self) -> dict:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_wait(self, consumer: Any, partitions: Any) -> None:
        """Seek; an offset below 0, or none, to the start (recovery, racing a rebalance after
        a broker fault, asked for both in the cluster chaos test, and the worker crashed)."""
        await super()._seek_wait(consumer, {tp: 0 if o is None or o < 0 else o
                                            for tp, o in partitions.items()})

    async def _seek_to_committed(self) -> dict:
        """Seek each partition to its committed offset, a stream's without one (or at 0),
        which aiokafka leaves where it is, to its first; return where each went (None: a
        table's changelog, which recovery places)."""
        consumer = self._ensure_consumer()
        positions = await consumer.seek_to_committed()  # seeks only to an offset > 0
        acked = self.app.topics.acks_enabled_for
        fresh = [tp for tp, offset in positions.items() if not offset and acked(tp.topic)]
        if fresh:
            firsts = await consumer.beginning_offsets(fresh)
            for tp in fresh:
                consumer.seek(tp, firsts[tp])
                positions[tp] = firsts[tp]
        return positions


def _pause_idle_changelogs(consumer: Any, active: Any, changelogs: set[str]) -> None:
    """Have aiokafka fetch a table's changelog partitions only while Faust reads them.

    Faust "pauses" a partition by not handing out its records; aiokafka goes on fetching it.
    A worker's own changelogs are read only in recovery, yet every fetch asked for them all:
    72 partitions a fetch, 36 of them changelogs, each encoded and decoded in pure Python.
    Here one Faust does not read is paused in aiokafka too, and resumed when Faust reads it."""
    tps = [tp for tp in consumer.assignment() if tp.topic in changelogs]
    paused = consumer.paused()
    wanted = {tp for tp in tps if tp not in active}
    if wanted - paused:
        consumer.pause(*(wanted - paused))
    back = [tp for tp in tps if tp in paused and tp not in wanted]
    if back:
        consumer.resume(*back)


def _count_seeks(fetcher: Any, seeks: Counter) -> None:
    """Count, per partition, every time aiokafka moves its position (a seek, a seek to the
    committed offset, to the beginning or the end), in the consumer's thread, as it happens."""
    seek_to, reset = fetcher.seek_to, fetcher.request_offset_reset

    def counted_seek_to(tp: Any, offset: int) -> Any:
        seeks[tp] += 1
        return seek_to(tp, offset)

    def counted_reset(tps: Any, strategy: Any) -> Any:
        tps = list(tps)
        seeks.update(tps)
        return reset(tps, strategy)

    fetcher.seek_to, fetcher.request_offset_reset = counted_seek_to, counted_reset
    fetcher.whistle_counts_seeks = True


class _Consumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.seeks: Counter = Counter()  # partition -> times sought (see _count_seeks)
        self.fetched_after: dict = {}    # partition -> its seeks when the batch was fetched
        self.holes: dict = {}            # partition -> the last offset read before a hole
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit(self, offsets: Any) -> bool:
        """Commit `offsets` (the producer is flushed), unless a record a stage produced was
        given up: then commit nothing and crash the worker (see `_Producer`)."""
        await asyncio.sleep(0)  # the flushed records' done-callbacks run first
        undelivered = getattr(self.app.producer, "undelivered", None)
        if undelivered:
            reason = Undelivered(f"{len(undelivered)} record(s) that stages produced were "
                                 f"given up by the client, e.g. {undelivered[0]}; the inputs "
                                 f"since the last commit are handled again after a restart")
            self.log.critical("not committing %s: %s", offsets, reason)
            await self.crash(reason)
            return False
        return await super()._commit(offsets)

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Subscribe once the broker's metadata lists every topic (see the module's text)."""
        topics = set(topics)
        await self._wait_for_metadata(topics)
        await super().subscribe(topics)

    async def _wait_for_metadata(self, topics: set[str]) -> None:
        """Wait until the broker's metadata lists each of `topics` with a leader for each
        partition; after `METADATA_WAIT` s, say which it does not and go on."""
        # the aiokafka driver's producer; Faust's ProducerT does not declare its client
        client = cast(driver.Producer, self.app.producer)._ensure_producer().client
        deadline = asyncio.get_running_loop().time() + METADATA_WAIT
        missing, looks = topics, 0
        while not self.should_stop:
            looks += 1
            try:
                cluster = await client.fetch_all_metadata()
            except KafkaError:
                pass
            else:
                missing = {t for t in topics if not cluster.partitions_for_topic(t)
                           or cluster.available_partitions_for_topic(t)
                           != cluster.partitions_for_topic(t)}
            if not missing:
                if looks > 1:
                    self.log.info("the broker's metadata lists every topic after %s looks", looks)
                return
            if asyncio.get_running_loop().time() > deadline:
                self.log.warning("subscribing although the broker's metadata lacks %s: their "
                                 "partitions may be assigned only at the next metadata "
                                 "refresh", ", ".join(sorted(missing)))
                return
            await asyncio.sleep(0.05)

    def ack(self, message: Any) -> bool:
        """A message fetched before the current rebalance, or handed out while the flow is
        stopped for one, is dropped unacknowledged: the rebalance's seek fetches it again."""
        if (message.generation_id != self.app.consumer_generation_id
                or not self.app.flow_control.is_active()):
            message.acked = True  # nothing to wait for: Faust's rebalance waits for unacked ones
            self._unacked_messages.discard(message)
            return False
        return super().ack(message)

    async def perform_seek(self) -> None:
        """Seek every stream partition to its committed offset, or its first if none (Faust's,
        with the offsets as they are): its next commit goes on from there."""
        for tp, offset in (await self.seek_to_committed()).items():
            self._read_offset[tp] = None if offset is None else offset - 1
            if offset is not None:
                self._committed_offset[tp] = offset

    def _new_offset(self, tp: Any) -> int | None:
        """The offset to commit for `tp`: Faust's, only once the offset its last commit (or
        seek) left off at is acknowledged. Faust's commits the first run of acknowledged offsets
        whatever comes before it while nothing is committed (a CI run lost the first six merge
        updates of a partition so), and one past an unacknowledged offset after that."""
        base = self._committed_offset[tp]
        if base is None or not (base in self._acked_index[tp]
                                or self._gap[tp].overlaps_point(base)):
            return None
        return super()._new_offset(tp)

    async def _skips(self, tp: Any, offset: int, last: int) -> bool:
        """Whether the message at `offset`, after a hole in what was read (`last` before it),
        is skipped: its partition is sought back to the hole (Whistle's streams read no
        compacted or transactional topic). Met again after that, the offsets are gone from the
        log (retention) and the hole counts as read."""
        if self.holes.get(tp) == last:
            self.log.error("%s: offsets %s-%s gone from the broker", tp, last + 1, offset - 1)
            self._gap[tp].addi(last + 1, offset)
            return False
        self.holes[tp] = last
        self.log.warning("%s: offset %s read after %s: seeking back", tp, offset, last)
        await self.seek_wait({tp: last + 1})
        self._read_offset[tp] = last
        return True

    def _sought_since(self, tp: Any, fetched_at: int | None) -> bool:
        """Whether `tp` was sought since a batch was fetched when it had `fetched_at` seeks."""
        return self.seeks[tp] != fetched_at

    async def _streams_run(self, message: Any, sought: Callable[[], bool]) -> bool:
        """Whether the streams take `message` now, waiting while a rebalance is under way: at
        its end Faust seeks to the committed offsets and only then lets the streams run, which
        empties their queues, so what was handed out in between would be lost (measured: the
        survivor's committed offset stuck before three alarms it was handed during the seek).
        False if the message is of an earlier rebalance, or another begins (or a seek comes)
        meanwhile."""
        app = self.app
        flow, generation = app.flow_control, app.consumer_generation_id
        while app.rebalancing or not flow.is_active():
            if self.should_stop or sought() or app.consumer_generation_id != generation:
                return False
            await asyncio.sleep(0.005)
        return message.generation_id == app.consumer_generation_id and not sought()

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover (the fetcher's)
        """Faust's loop handing fetched messages to the streams, less what was fetched before
        its partition was sought (see the module's text)."""
        read_offset, seeks = self._read_offset, self.seeks
        acks_enabled_for = self.app.topics.acks_enabled_for
        handed = 0
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                # an async generator, which Faust declares as the AsyncIterator it also is
                batch = cast(AsyncGenerator[tuple[Any, Any], None], self.getmany(timeout=1.0))
                await self.sleep(0)
                if self.should_stop:
                    await batch.aclose()
                    continue
                async with aclosing(batch):
                    async for tp, message in batch:
                        sought = self.fetched_after.get(tp)
                        if seeks[tp] != sought:
                            continue  # fetched before a seek: fetched again after it
                        if acks_enabled_for(message.topic) and not await self._streams_run(
                                message, partial(self._sought_since, tp, sought)):
                            continue  # a rebalance came first: its seek reads it again
                        handed += 1
                        if handed > 100:  # let the loop breathe in a long batch
                            handed = 0
                            await asyncio.sleep(0)
                        offset, last = message.offset, read_offset[tp]
                        if last is not None and offset < last:
                            continue  # read already since the seek
                        if last is not None and offset - last > 1 \
                                and acks_enabled_for(message.topic) \
                                and await self._skips(tp, offset, last):
                            continue  # a hole: sought back to it
                        if self._commit_every is not None \
                                and self._n_acked >= self._commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if (rest := eager(self.callback(message))) is not None:  # it waits
                            await self.wait_first(rest, self.suspend_flow.wait())
                        if seeks[tp] == sought:  # else sought meanwhile: it comes again
                            read_offset[tp] = offset
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class _Producer(driver.Producer):
    """The idempotent producer (acks=all): a record the client sends again after a lost
    answer, or a broker failover, is written once. Faust turns it on only in its own
    `exactly_once` mode, which Whistle does not use (docs/design.md, "Delivery").

    Records given up. Faust commits an input's offset once the producer is flushed, but a
    flush also ends when the client gives a batch up: aiokafka fails a batch whose partition
    has had no leader for `producer_request_timeout` (30 s), idempotent or not, and the input
    would count as done without its output. A record a stage produced (`watch`) and the client
    gave up is noted in `undelivered`; the consumer then commits nothing more and crashes the
    worker (exit 1, restarted by its supervisor), and the partitions' next owner handles those
    inputs again from the committed offsets (every stage is idempotent). A record refused for
    itself (too large) would be refused again: it is logged and does not stop the worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.undelivered: list[str] = []  # "<topic>: <error>" of each record given up
        super().__init__(*args, **kwargs)

    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    def watch(self, sent: asyncio.Future, topic: str) -> None:
        """Note `sent` in `undelivered` if the client gives it up."""
        sent.add_done_callback(partial(self._delivered, topic))

    def _delivered(self, topic: str, sent: asyncio.Future) -> None:
        if sent.cancelled():
            return
        exc = sent.exception()
        if exc is None or isinstance(exc, REFUSED):
            return
        self.log.error("a record a stage sent to %s was given up by the client (%r): no "
                       "offset is committed from now on", topic, exc)
        self.undelivered.append(f"{topic}: {exc!r}")


def watched(app: Any, sent: asyncio.Future, topic: str) -> None:
    """`sent` is a record a stage produced: see `_Producer` (another producer: nothing)."""
    if isinstance(app.producer, _Producer):
        app.producer.watch(sent, topic)


class Undelivered(Exception):
    """A record a stage produced was given up by the client (`_Producer`)."""


class Transport(driver.Transport):
    Consumer = _Consumer
    Producer = _Producer
