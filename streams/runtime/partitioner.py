"""Kafka's default partitioner (murmur2 of the key, as the Java client and aiokafka), with
each key's hash remembered.

aiokafka computes murmur2 in pure Python for every keyed record: 3% of a loaded worker's
time in issue 21's profile. Most keys repeat at once (an incident's snapshot, its tasks and
its timeline entries are all keyed by its id), so the hash of the last few thousand keys is
kept. The partition is the same as aiokafka's `DefaultPartitioner` gives, which other
producers of the contract's topics (keyed by site or incident) use too.

    >>> partitioner = CachedPartitioner()
    >>> partitioner(b"jyh-yinfeng-lab-3", [0, 1, 2, 3], [0, 1, 2, 3])
    3
"""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2

__all__ = ["CachedPartitioner"]


class CachedPartitioner:
    """Callable as aiokafka's partitioner: (key, all_partitions, available) -> partition."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self.hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int],
                 available: list[int]) -> int:
        if key is None:
            return DefaultPartitioner()(key, all_partitions, available)
        hashed = self.hashes.get(key)
        if hashed is None:
            if len(self.hashes) >= self.size:
                self.hashes.clear()  # cheaper than keeping an order; refilled at once
            hashed = self.hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]
