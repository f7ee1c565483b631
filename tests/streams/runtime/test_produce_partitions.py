"""`partitions`: what aiokafka's producer hands its partitioner, made again only when the
producer's metadata changes (no broker: aiokafka's own metadata, updated as a response would)."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.cluster import ClusterMetadata
from aiokafka.protocol.metadata import MetadataResponse_v0

from streams.runtime.produce import partitions


def _response(leaders: dict[int, int]) -> MetadataResponse_v0:
    return MetadataResponse_v0(
        brokers=[(1, "127.0.0.1", 9092)],
        topics=[(0, "whistle.tasks.police",
                 [(0, p, leader, [1], [1]) for p, leader in leaders.items()])])


def test_the_partitions_are_aiokafkas_and_follow_a_metadata_update() -> None:
    metadata = ClusterMetadata()
    producer = SimpleNamespace(_metadata=metadata)
    assert partitions(producer, "whistle.tasks.police") is None  # not known yet

    metadata.update_metadata(_response({0: 1, 1: -1, 2: 1}))  # partition 1 has no leader
    first = partitions(producer, "whistle.tasks.police")
    assert first == ([0, 1, 2], [0, 2])
    assert first == (list(metadata.partitions_for_topic("whistle.tasks.police")),
                     list(metadata.available_partitions_for_topic("whistle.tasks.police")))
    assert partitions(producer, "whistle.tasks.police") is first  # not made again

    metadata.update_metadata(_response({0: 1, 1: 1, 2: 1}))  # its leader is back
    assert partitions(producer, "whistle.tasks.police") == ([0, 1, 2], [0, 1, 2])
    assert partitions(producer, "whistle.tasks.fire") is None  # a topic it does not know

    other = SimpleNamespace(_metadata=ClusterMetadata())  # another producer's metadata
    other._metadata.update_metadata(_response({0: 1}))
    assert partitions(other, "whistle.tasks.police") == ([0], [0])
    assert partitions(producer, "whistle.tasks.police") == ([0, 1, 2], [0, 1, 2])
