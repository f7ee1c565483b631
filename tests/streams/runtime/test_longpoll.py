"""`longpoll.adapt`: an aiokafka consumer on the embedded Kafka asks the broker to hold a fetch
long while it asks for every partition it can read, and briefly while it leaves one out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka.broker import EmbeddedBroker
from streams.runtime.longpoll import IDLE_WAIT_MS, adapt

pytestmark = pytest.mark.integration

SHORT_MS = 10


def _noting(consumer: AIOKafkaConsumer) -> list[tuple[int, int]]:
    """Note each fetch request the consumer makes: (its wait, the partitions it asks for)."""
    fetcher = consumer._fetcher
    build, made = fetcher._get_actions_per_node, []

    def actions(assignment):
        out = build(assignment)
        made.extend((r._max_wait_ms, sum(len(ps) for _, ps in r.topics)) for _, r in out[0])
        return out

    fetcher._get_actions_per_node = actions
    return made


@asynccontextmanager
async def _on_kafka(tmp_path, topic: str, partitions: int,
                    consumers: int) -> AsyncIterator[list]:
    """The embedded Kafka with `topic`, and a producer and `consumers` consumers on it (short
    waits, from the earliest offset), started; all stopped after."""
    broker = EmbeddedBroker(tmp_path / "broker").start()
    server = broker.url.removeprefix("kafka://")
    clients: list = []
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=server)
        await admin.start()
        await admin.create_topics([NewTopic(topic, partitions, 1)])
        await admin.close()
        for client in [AIOKafkaProducer(bootstrap_servers=server),
                       *(AIOKafkaConsumer(bootstrap_servers=server, fetch_max_wait_ms=SHORT_MS,
                                          auto_offset_reset="earliest")
                         for _ in range(consumers))]:
            await client.start()
            clients.append(client)
        yield clients
    finally:
        for client in clients:
            await client.stop()
        broker.stop()


async def test_an_idle_consumer_polls_long_and_one_holding_records_briefly(tmp_path) -> None:
    p0, p1 = TopicPartition("lp", 0), TopicPartition("lp", 1)
    async with _on_kafka(tmp_path, "lp", 2, consumers=2) as (producer, adapted, plain):
        adapt(adapted._fetcher, short_ms=SHORT_MS)
        made, plain_made = _noting(adapted), _noting(plain)
        for consumer in (adapted, plain):
            consumer.assign([p0, p1])
        await asyncio.sleep(1.0)  # idle: nothing on the topic
        assert made and all(m == (IDLE_WAIT_MS, 2) for m in made), made
        assert len(made) <= 1000 / IDLE_WAIT_MS + 3, made  # the plain one: up to 100 a second
        assert len(plain_made) > 3 * len(made), (len(plain_made), len(made))

        # a record answers a long poll at once; held, not handed out, its partition is left
        # out of the next fetch, which then waits briefly
        await producer.send_and_wait("lp", b"r", partition=0)
        fetcher = adapted._fetcher
        async with asyncio.timeout(10):
            while p0 not in fetcher._records:
                await asyncio.sleep(0.005)
        fetcher._get_actions_per_node(adapted._subscription.subscription.assignment)
        assert fetcher._fetch_max_wait_ms == SHORT_MS
        assert [r.value for r in (await adapted.getmany(p0, timeout_ms=1000))[p0]] == [b"r"]

        # a paused partition is not fetched: asking for the others is asking for all
        adapted.pause(p1)
        fetcher._get_actions_per_node(adapted._subscription.subscription.assignment)
        assert fetcher._fetch_max_wait_ms == IDLE_WAIT_MS


async def test_while_records_come_a_fetch_asks_for_their_partitions_and_now_and_then_all(
        tmp_path) -> None:
    tps = [TopicPartition("flow", p) for p in range(4)]
    async with _on_kafka(tmp_path, "flow", 4, consumers=1) as (producer, consumer):
        adapt(consumer._fetcher, short_ms=SHORT_MS)
        made = _noting(consumer)
        consumer.assign(tps)
        got: list[bytes] = []

        async def read() -> None:
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    got.extend(r.value for r in records)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # idle: long polls for all four
        assert made and all(m == (IDLE_WAIT_MS, 4) for m in made), made
        idle = len(made)
        for i in range(300):  # a flow on partition 0, one record every ~3 ms
            await producer.send_and_wait("flow", b"%d" % i, partition=0)
            if i == 150:  # and one on a cold partition, amid it
                await producer.send_and_wait("flow", b"cold", partition=3)
            await asyncio.sleep(0.002)
        async with asyncio.timeout(10):
            while len(got) < 301:
                await asyncio.sleep(0.01)
        reader.cancel()
        flowing = [n for _, n in made[idle:]]
        assert sorted(got) == sorted([b"%d" % i for i in range(300)] + [b"cold"])
        assert flowing.count(1) > flowing.count(4) > 0, flowing  # mostly the hot one, all too
        assert all(n in (1, 2, 4) for n in flowing), flowing  # (2: while 3's record was hot)


def test_the_hot_partitions_are_asked_for_alone_only_if_one_of_them_can_be_fetched() -> None:
    from types import SimpleNamespace

    from streams.runtime.longpoll import HOT_FOR, hot_only

    ready = SimpleNamespace(paused=False, has_valid_position=True)
    paused = SimpleNamespace(paused=True, has_valid_position=True)
    states = {"a0": ready, "a1": ready, "u0": ready, "c0": paused}
    now = 100.0
    assert hot_only(list(states), states.get, {}, now) is None  # none hot: all
    had = {"a0": now - 0.1, "u0": now - HOT_FOR - 0.1}  # u0's records are too old
    assert hot_only(list(states), states.get, had, now) == ["a0", "c0"]  # c0: asked for never
    states["a0"] = paused  # the one hot partition paused: alone it would ask for nothing
    assert hot_only(list(states), states.get, had, now) is None
    states["a0"] = ready
    assert hot_only(list(states), states.get, {tp: now for tp in states}, now) is None  # all hot
