"""`memory://` tables whose values are kept as JSON bytes, not as Python objects.

Faust's memory store keeps each value as it was set: an incident, a task or a timeline is a
tree of dicts, lists and strings, dozens of objects that the cyclic garbage collector walks
at every full collection and that take several times their JSON size. Kept packed, a value is
one bytes object, which the collector does not track. Reading a value decodes it, so every
read gets a fresh copy, as it does from RocksDB: changing what `get` returned changes nothing
until it is set again (the agents always set what they change).

Measured with `whistle bench` (README: Speed): after 100,000 alarms at 10,000 sites, RSS
286 MiB, against 428 MiB with Faust's store (310 MiB with the standard library's json); at
200 alarms/s the full collections that remain no longer walk the tables (p99 64-76 ms in two
runs, against 74-155 ms). Each read costs an `orjson.loads` of the value (2 µs for 1 KB),
each write an `orjson.dumps` and a copy (1.8 µs; the standard library's json took 7 and
11 µs, 6% of the worker's throughput).
`WHISTLE_STORE=memory://` selects it; the URL the Faust app is given is `whistle-memory://`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
from faust.stores import STORES, memory
from faust.types import TP

from streams.runtime import rocks

__all__ = ["PackedValues", "Store", "URL", "held", "store_url"]

log = logging.getLogger(__name__)
URL = "whistle-memory://"
_MISSING = object()


class PackedValues(MutableMapping):
    """A dict that keeps its values as compact JSON (UTF-8) and decodes them when read.

        >>> d = PackedValues(); d["inc-1"] = {"level": "II", "task_ids": ["a"]}
        >>> d["inc-1"]["task_ids"], d.raw("inc-1")
        (['a'], b'{"level":"II","task_ids":["a"]}')
    """

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[Any, bytes] = {}

    def __getitem__(self, key: Any) -> Any:
        return orjson.loads(self._data[key])

    def __setitem__(self, key: Any, value: Any) -> None:
        # a copy: orjson's bytes keep the buffer it wrote into (measured with orjson 3.13:
        # 4.1 KB each for a 40-byte value; a memory:// worker grew to 1,054 MiB)
        self._data[key] = bytes(memoryview(orjson.dumps(value)))

    def __delitem__(self, key: Any) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: Any, default: Any = None) -> Any:
        raw = self._data.get(key)
        return default if raw is None else orjson.loads(raw)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        raw = self._data.pop(key, None)
        if raw is not None:
            return orjson.loads(raw)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def clear(self) -> None:
        self._data.clear()

    def raw(self, key: Any) -> bytes:
        """The value as kept."""
        return self._data[key]


class Store(memory.Store):
    """Faust's memory store over `PackedValues`, holding only the partitions this worker
    is given.

    Faust's memory store knows the partition of a key only when it read the key from the
    changelog, and drops a moved partition's keys only once recovery completes: a key its
    own stage wrote stayed after the group gave its partition to another worker, and the
    lists gathered from every worker showed it twice, the stale copy beside the new owner's
    (the cluster chaos test: incidents and tasks listed twice, alarms seemingly on no
    incident or on two, until the next rebalance). Here every write notes its partition
    (`written`, from `streams.runtime.changelog.Table`) and a rebalance drops the keys of
    every partition the worker no longer holds, before it handles anything more."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.data = PackedValues()

    def written(self, key: Any, partition: int) -> None:
        """Note the partition a stage wrote `key` on."""
        self._key_partition[key] = partition

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP],
                           newly_assigned: set[TP], generation_id: int = 0) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        if self.table.is_global:  # every worker holds all of it
            return
        mine = held(self.table, assigned)
        gone = [key for key, partition in self._key_partition.items() if partition not in mine]
        for key in gone:
            self.data.pop(key, None)
            del self._key_partition[key]
        if gone:
            log.info("%s: %d keys of partitions moved to another worker dropped",
                     self.table.name, len(gone))


def held(table: Any, assigned: set[TP]) -> set[int]:
    """The partitions of `table` a worker holds: its own changelog's in `assigned` (which holds
    every topic's; a global table's changelog, all of its partitions, would count them all)."""
    mine = table.changelog_topic.topics
    return {tp.partition for tp in assigned if tp.topic in mine}


STORES.aliases.setdefault(URL.removesuffix("://"), f"{__name__}:Store")


def store_url(store: str) -> str:
    """The Faust store URL for Whistle's `store` setting: `memory://` is this module's,
    `rocksdb://` `streams.runtime.rocks`' (whose options say whether its instances share a
    budget: `streams.app.store_options`)."""
    scheme = store.split("://", 1)[0]
    if scheme == "memory":
        return URL
    if scheme == "rocksdb":
        return rocks.URL
    return store
