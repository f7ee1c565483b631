"""A record handed to aiokafka's producer without `send`'s wrappers around it.

A new incident is 14 records from one step (docs/design.md). `AIOKafkaProducer.send` costs
9 us of CPU a record here, its accumulator's `add_message` (what `send` ends in) 5 us, both
with the sender's work (`sendbench` in issue 21's second stop); Faust's `Producer.send` adds
its own layer on top. Where the topic's partitions are known, `enqueue` does what `send` does
for a record of bytes (no serializers, no transaction; the same partitioner, the same
accumulator, timeout and headers) and nothing else; otherwise it calls `send`, which waits for
the topic's metadata.

    sent = await enqueue(producer, "whistle.incidents", b"inc-1", value)
    await sent   # the broker's ack (RecordMetadata)
    sent = await produce(app, "whistle.incidents", b"inc-1", value)   # by a Faust app's producer
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.structs import TopicPartition
from faust.exceptions import NotReady

__all__ = ["enqueue", "partitions", "produce"]


# topic -> (aiokafka's partitions of it, what `partitions` made of them)
_known: dict[str, tuple[Any, tuple[list[int], list[int]]]] = {}


def partitions(producer: Any, topic: str) -> tuple[list[int], list[int]] | None:
    """What aiokafka's producer gives its partitioner for `topic` (`_partition`): all of its
    partitions and the available ones; None while the producer does not know the topic.

    aiokafka builds both as new sets from its metadata at every call (2.6% of a loaded
    worker's samples in issue 21's sixth profile); a metadata update replaces each topic's
    partitions with a new dict, so here they are made again only then. Do not change them."""
    metadata: Any = getattr(producer, "_metadata", None)
    held = metadata._partitions.get(topic) if metadata is not None else None
    if not held:
        return None
    known = _known.get(topic)
    if known is not None and known[0] is held:
        return known[1]
    made = (list(metadata.partitions_for_topic(topic)),
            list(metadata.available_partitions_for_topic(topic)))
    _known[topic] = (held, made)
    return made


async def produce(app: Any, topic: str, key: bytes | None, value: bytes | None,
                  headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future:
    """`enqueue` by the aiokafka producer of `app` (a Faust app); before it has started (Faust's
    test context), Faust's own `send`."""
    try:
        producer = app.producer._ensure_producer()
    except NotReady:
        return await app.producer.send(topic, key, value, None, None, headers)
    return await enqueue(producer, topic, key, value, None, headers)


async def enqueue(producer: Any, topic: str, key: bytes | None, value: bytes | None,
                  partition: int | None = None,
                  headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future:
    """Hand one record to `producer` (an `AIOKafkaProducer`, started), as `producer.send`
    would; the future is the broker's answer. Raises what `send` raises (KafkaTimeoutError:
    the buffer stayed full for `request_timeout_ms`)."""
    known = partitions(producer, topic)
    if known is None or (partition is not None and partition not in known[0]):
        return await producer.send(topic, value, key=key, partition=partition,
                                   headers=headers)
    if partition is None:
        partition = producer._partitioner(key, *known)
    return await producer._message_accumulator.add_message(
        TopicPartition(topic, partition), key, value, producer._request_timeout_ms / 1000,
        timestamp_ms=None, headers=headers or [])
