"""A record a stage produced and the client gave up stops the offset commits and crashes the
worker, so its input is handled again (streams.runtime.transport)."""

from __future__ import annotations

import asyncio

from aiokafka.errors import NotLeaderForPartitionError, RecordTooLargeError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from streams.app import build
from streams.runtime.changelog import changes
from streams.runtime.transport import Undelivered
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
