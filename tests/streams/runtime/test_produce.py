"""`enqueue` writes what aiokafka's `send` writes, where `send` would, on the embedded Kafka."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from streams.kafka.broker import EmbeddedBroker
from streams.runtime.produce import enqueue

pytestmark = pytest.mark.integration


async def test_records_land_as_sends_would_with_their_headers(tmp_path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker").start()
    server = broker.url.removeprefix("kafka://")
    producer = consumer = None
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=server)
        await admin.start()
        await admin.create_topics([NewTopic("t4", 4, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=server, acks="all")
        await producer.start()
        # the topic's metadata not known yet: `send`'s way, which waits for it
        first = await enqueue(producer, "t4", b"inc-0", b"v0")
        keys = [f"inc-{i}".encode() for i in range(1, 40)]
        sent = [await enqueue(producer, "t4", k, k + b"!", headers=[("h", k)]) for k in keys]
        pinned = await enqueue(producer, "t4", b"inc-1", b"pinned", partition=2)
        done = [await f for f in [first, *sent, pinned]]

        everyone = [0, 1, 2, 3]
        expected = [DefaultPartitioner()(k, everyone, everyone) for k in [b"inc-0", *keys]]
        assert [m.partition for m in done] == [*expected, 2]
        consumer = AIOKafkaConsumer(bootstrap_servers=server, auto_offset_reset="earliest")
        await consumer.start()
        consumer.assign([TopicPartition("t4", p) for p in everyone])
        read: dict[bytes, tuple[int, bytes, list]] = {}
        while len(read) < len(keys) + 2:
            for tp, records in (await consumer.getmany(timeout_ms=2000)).items():
                for r in records:
                    read[r.value] = (tp.partition, r.key, list(r.headers))
        for key, partition in zip(keys, expected[1:], strict=True):
            assert read[key + b"!"] == (partition, key, [("h", key)])
        assert read[b"v0"] == (expected[0], b"inc-0", [])
        assert read[b"pinned"] == (2, b"inc-1", [])
    finally:
        for client in (producer, consumer):
            if client is not None:
                await client.stop()
        broker.stop()
