"""Kafka transactions on the embedded Apache Kafka: what they would give Whistle's stages, and
what they would cost (docs/design.md, "Delivery: at-least-once, idempotent stages").

A stage reads one record and writes several (an incident, its tasks, timeline entries, the
changelogs). With a transactional producer it could write them and its consumer offset
atomically, and a `read_committed` reader would never see the outputs of a step that died
half-way. This test shows that this works here (aiokafka's transactional producer against
Kafka 3.9), and measures a stage step both ways on the same broker:

- transactional, a transaction per step: begin, the outputs, the input's offset in the
  transaction, commit (an answer to a department only once its step is committed);
- transactional, a transaction per 100 steps (as Kafka Streams commits every 100 ms);
- at-least-once, as Whistle runs: the outputs sent, the producer flushed before the offset is
  committed (Faust commits every few seconds; here once per 100 steps).

    .venv/bin/pytest -s tests/streams/kafka/test_transactions.py   # prints the `transactions:` line
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from streams.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

STEPS, OUTPUTS = 300, 6   # a new incident writes about six records on the stage's own topics
VALUE = b"x" * 600        # the size of a task snapshot


async def create(server: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=server)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 1, 1) for n in names])
    finally:
        await admin.close()


async def read_committed(server: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=server, isolation_level="read_committed",
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]  # the last stable offset
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=2000)
            values += [r.value for r in batch.get(tp, [])]
        return values
    finally:
        await consumer.stop()


async def transactional_steps(server: str, topic: str, per_transaction: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=server, transactional_id=f"stage-{topic}")
    await producer.start()
    try:
        started = time.perf_counter()
        for first in range(0, STEPS, per_transaction):
            async with producer.transaction():
                for _ in range(per_transaction * OUTPUTS):
                    await producer.send(topic, VALUE)
                await producer.send_offsets_to_transaction(
                    {TopicPartition("in", 0): OffsetAndMetadata(first + per_transaction, "")},
                    "stage-bench")
        return (time.perf_counter() - started) / STEPS
    finally:
        await producer.stop()


async def at_least_once_steps(server: str, topic: str) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=server, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        started = time.perf_counter()
        pending = []
        for step in range(STEPS):
            pending += [await producer.send(topic, VALUE) for _ in range(OUTPUTS)]
            if (step + 1) % 100 == 0:  # before an offset commit, everything sent is acked
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return (time.perf_counter() - started) / STEPS
    finally:
        await producer.stop()


async def aborted_step_is_invisible(server: str) -> tuple[list[bytes], list[bytes]]:
    producer = AIOKafkaProducer(bootstrap_servers=server, transactional_id="stage-abort")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send("out", b"step 1")
        await producer.begin_transaction()
        await producer.send("out", b"step 2, half-way")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send("out", b"step 2")
    finally:
        await producer.stop()
    uncommitted = AIOKafkaConsumer(bootstrap_servers=server, auto_offset_reset="earliest",
                                   isolation_level="read_uncommitted")
    await uncommitted.start()
    try:
        tp = TopicPartition("out", 0)
        uncommitted.assign([tp])
        await uncommitted.seek_to_beginning(tp)
        everything = [r.value for r in (await uncommitted.getmany(tp, timeout_ms=3000))[tp]]
    finally:
        await uncommitted.stop()
    return everything, await read_committed(server, "out")


def test_transactions_work_here_and_what_a_stage_step_costs_with_them(tmp_path):
    with EmbeddedBroker(tmp_path / "broker") as broker:
        server = broker.url.removeprefix("kafka://")
        asyncio.run(create(server, "in", "out", "tx", "tx100", "plain"))
        everything, committed = asyncio.run(aborted_step_is_invisible(server))
        assert b"step 2, half-way" in everything
        assert committed == [b"step 1", b"step 2"]

        plain = asyncio.run(at_least_once_steps(server, "plain"))
        tx = asyncio.run(transactional_steps(server, "tx", 1))
        tx100 = asyncio.run(transactional_steps(server, "tx100", 100))
        for topic in ("tx", "tx100"):
            assert len(asyncio.run(read_committed(server, topic))) == STEPS * OUTPUTS
    print(f"\ntransactions: a stage step of {OUTPUTS} records, {STEPS} steps: "
          f"at-least-once {plain * 1000:.2f} ms, a transaction per step {tx * 1000:.2f} ms "
          f"({tx / plain:.0f}x), per 100 steps {tx100 * 1000:.2f} ms ({tx100 / plain:.1f}x)")
