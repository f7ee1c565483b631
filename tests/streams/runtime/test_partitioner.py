"""The partitioner that remembers hashes sends each key where aiokafka's default does."""

import random

from aiokafka.partitioner import DefaultPartitioner

from streams.runtime.partitioner import CachedPartitioner


def test_the_same_partition_as_the_default_for_every_key_and_count() -> None:
    cached, default = CachedPartitioner(size=64), DefaultPartitioner()
    rng = random.Random(21)
    for _ in range(5_000):  # more keys than it remembers: forgetting changes nothing
        key = f"inc-20230516-{rng.randrange(300):010x}".encode()
        partitions = list(range(rng.choice([1, 3, 4, 12])))
        assert cached(key, partitions, partitions) == default(key, partitions, partitions)
    assert len(cached.hashes) <= 64


def test_no_key_picks_an_available_partition() -> None:
    assert CachedPartitioner()(None, [0, 1, 2, 3], [2]) == 2


def test_murmur2_is_aiokafkas_for_every_length_and_byte() -> None:
    from aiokafka.partitioner import murmur2 as aiokafkas

    from streams.runtime.partitioner import murmur2

    rng = random.Random(2)
    for length in range(70):  # every tail (length % 4), bytes over 0x7f (signed in Java)
        for _ in range(50):
            data = bytes(rng.randrange(256) for _ in range(length))
            assert murmur2(data) == aiokafkas(data), data
    assert murmur2("街道-吹哨".encode()) == aiokafkas("街道-吹哨".encode())
