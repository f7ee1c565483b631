"""A record a stage produced and the client gave up stops the offset commits and crashes the
worker, so its input is handled again; a commit never passes an offset that was not handled, and
a hole in what was read is read again (streams.runtime.transport)."""

from __future__ import annotations

import asyncio

from aiokafka.errors import NotLeaderForPartitionError, RecordTooLargeError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message

from streams.app import build
from streams.runtime.changelog import changes
from streams.runtime.transport import Undelivered, _ConsumerThread
from streams.settings import Settings


def whistle(tmp_path):
    return build(Settings(broker="kafka://127.0.0.1:1", store="memory://", data=tmp_path))


async def test_a_record_given_up_stops_the_commits_and_crashes_the_worker(tmp_path,
                                                                         monkeypatch) -> None:
    w = whistle(tmp_path)
    committed, crashed = [], []

    async def commit(self, offsets):
        committed.append(dict(offsets))
        return True

    async def crash(reason):
        crashed.append(reason)

    monkeypatch.setattr(driver.Consumer, "_commit", commit)
    consumer = w.app.consumer
    monkeypatch.setattr(consumer, "crash", crash)
    tp = TP("whistle.alarms", 3)

    assert await consumer._commit({tp: 5}) is True
    assert committed == [{tp: 5}] and crashed == []

    loop = asyncio.get_running_loop()
    too_large, given_up, fine = loop.create_future(), loop.create_future(), loop.create_future()
    for sent in (too_large, given_up, fine):
        w.app.producer.watch(sent, "whistle.tasks.police")
    too_large.set_exception(RecordTooLargeError())  # refused for itself: logged, no crash
    fine.set_result(None)
    assert await consumer._commit({tp: 6}) is True
    given_up.set_exception(NotLeaderForPartitionError())  # the client gave the batch up

    assert await consumer._commit({tp: 7}) is False
    assert committed == [{tp: 5}, {tp: 6}]  # 7 is not committed: its input is handled again
    assert len(crashed) == 1 and isinstance(crashed[0], Undelivered)
    assert "whistle.tasks.police: NotLeaderForPartitionError" in str(crashed[0])


async def test_only_what_a_stage_sends_is_watched(tmp_path, monkeypatch) -> None:
    """A stage's output (inside `changes()`) is watched; an alarm ingested over HTTP is not:
    its POST waits for the ack and answers 503 when it fails."""
    w = whistle(tmp_path)
    loop = asyncio.get_running_loop()
    sent: list[asyncio.Future] = []

    async def send(*args, **kwargs):
        sent.append(loop.create_future())
        return sent[-1]

    monkeypatch.setattr(w.app.producer, "send", send)
    await w.send("whistle.alarms", "site-1", b"{}")             # ingest
    with changes():
        await w.send("whistle.tasks.police", "inc-1", b"{}")     # a stage
    for future in sent:
        future.set_exception(NotLeaderForPartitionError())
    await asyncio.sleep(0)
    assert w.app.producer.undelivered == [
        "whistle.tasks.police: NotLeaderForPartitionError()"]


UPDATES = TP("whistle.incident-updates", 3)


def consuming(w):
    """The worker's consumer, its stream topic subscribed and the flow running."""
    w.app.topics._acking_topics.add(UPDATES.topic)
    w.app.flow_control.resume()
    return w.app.consumer


def acked(consumer, *offsets: int) -> None:
    for offset in offsets:
        assert consumer.ack(Message(UPDATES.topic, UPDATES.partition, offset, 0.0, 0, {}, b"k",
                                    b"v", None, generation_id=0))


async def test_a_commit_begins_where_reading_began(tmp_path, monkeypatch) -> None:
    """The lost merges of a CI run: a partition's first six messages were never handled, the
    next four were, and Faust committed past all ten (with nothing committed yet it commits
    the first run of acknowledged offsets, wherever it begins)."""
    consumer = consuming(whistle(tmp_path))
    acked(consumer, 6, 7, 8, 9)
    assert driver.Consumer._new_offset(consumer, UPDATES) == 10  # Faust's own: past 0-5
    acked(consumer, 6, 7, 8, 9)
    assert consumer._filter_committable_offsets({UPDATES}) == {}  # not known where it began

    async def seek_to_committed():
        return {UPDATES: 0, TP("whistle-incidents-changelog", 3): None}

    monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)
    await consumer.perform_seek()  # no commit yet: sought to the partition's first offset
    assert consumer._committed_offset[UPDATES] == 0 and consumer._read_offset[UPDATES] == -1
    assert consumer._filter_committable_offsets({UPDATES}) == {}  # 0-5 not handled
    acked(consumer, 0, 1, 2, 3, 4, 5)
    assert consumer._filter_committable_offsets({UPDATES}) == {UPDATES: 10}

    consumer._committed_offset[UPDATES] = 10  # as Faust notes a commit
    acked(consumer, 11, 12)  # 10 not handled (given back in a rebalance): Faust's commits 13
    assert consumer._filter_committable_offsets({UPDATES}) == {}
    acked(consumer, 10)
    assert consumer._filter_committable_offsets({UPDATES}) == {UPDATES: 13}


async def test_a_hole_in_what_was_read_is_read_again(tmp_path, monkeypatch) -> None:
    consumer = consuming(whistle(tmp_path))
    sought = []

    async def seek_wait(offsets):
        sought.extend(offsets.items())

    monkeypatch.setattr(consumer, "seek_wait", seek_wait)
    consumer._committed_offset[UPDATES] = 6
    assert await consumer._skips(UPDATES, 8, 5) is True  # read 5, then 8: back to 6
    assert sought == [(UPDATES, 6)] and consumer._read_offset[UPDATES] == 5
    # the same hole after the seek back: 6 and 7 are gone from the log, and count as read
    assert await consumer._skips(UPDATES, 8, 5) is False and sought == [(UPDATES, 6)]
    acked(consumer, 8)
    assert consumer._filter_committable_offsets({UPDATES}) == {UPDATES: 9}


async def test_a_partition_without_a_commit_is_sought_to_its_first_offset(tmp_path) -> None:
    """aiokafka's seek to the committed offsets leaves a partition without one (or at 0)
    where it is: after a rebalance, ahead of what was handed out before it, maybe."""
    w = whistle(tmp_path)
    w.app.topics._acking_topics.add(UPDATES.topic)
    fresh, zero, moved = UPDATES, UPDATES._replace(partition=0), UPDATES._replace(partition=1)
    changelog = TP("whistle-incidents-changelog", 3)
    sought = []

    class Client:  # aiokafka's consumer, as far as the seek goes
        async def seek_to_committed(self):
            return {fresh: None, zero: 0, moved: 7, changelog: None}

        async def beginning_offsets(self, tps):
            return {tp: {fresh: 3, zero: 0}[tp] for tp in tps}

        def seek(self, tp, offset):
            sought.append((tp, offset))

    thread = _ConsumerThread(w.app.consumer, loop=asyncio.get_running_loop())
    thread._ensure_consumer = Client
    assert await thread._seek_to_committed() == {fresh: 3, zero: 0, moved: 7, changelog: None}
    assert sorted(sought) == [(zero, 0), (fresh, 3)]  # 7: aiokafka's own seek


async def test_recovery_s_seek_below_0_goes_to_the_start(tmp_path) -> None:
    """Faust's recovery asked to seek a changelog partition below -1, and another to None,
    after broker faults in the cluster chaos test; aiokafka refuses such an offset, and the
    worker crashed."""
    w = whistle(tmp_path)
    below, ahead, none = (TP("whistle-incidents-changelog", p) for p in (0, 1, 2))
    sought = []

    class Client:  # aiokafka's consumer, as far as the seek goes
        def seek(self, tp, offset):
            if not isinstance(offset, int) or offset < 0:
                raise ValueError("Offset must be a positive integer")  # as aiokafka does
            sought.append((tp, offset))

        async def position(self, tp):
            return dict(sought)[tp]

    thread = _ConsumerThread(w.app.consumer, loop=asyncio.get_running_loop())
    await thread._seek_wait(Client(), {below: -2, ahead: 7, none: None})
    assert sorted(sought) == [(below, 0), (ahead, 7), (none, 0)]
