"""`rocksdb://` tables whose partitions share one memory budget.

Faust opens one RocksDB instance per table partition, each with its own write buffers and
block cache: 9 tables x 4 partitions are 36 instances, and a worker's RocksDB memory is 36
times what one partition may hold, whether it needs it or not. Here every instance of the
worker uses one block cache of `WHISTLE_ROCKSDB_MEMORY_MB`, and a write-buffer manager
charges their memtables to that same cache and flushes the largest when they pass half of it:
RocksDB's memory has one limit, whatever the partitions. Measured with `whistle bench
--memory 100000` (issue 21; README: Speed).

The default is 16 MiB: after 100,000 alarms a worker held 226 MB with 32 and 203 MB with
16, at the same throughput and CPU per alarm (`whistle bench --alarms 3000`, `rocksdb://`:
1.22 ms either way). `WHISTLE_ROCKSDB_MEMORY_MB=0` keeps Faust's options (a cache of
`WHISTLE_ROCKSDB_CACHE_MB` per partition). The URL the Faust app is given is
`whistle-rocksdb://` either way (`streams.runtime.store.store_url`: this store also keeps
Faust's key index compact), and `streams.app`'s `store_options` add the size as
`shared_memory`; what is on disk is the same either way.
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

__all__ = ["URL", "Store", "shared", "with_shared_memory"]

URL = "whistle-rocksdb://"

_SHARED: dict[int, tuple[rocksdict.Cache, rocksdict.WriteBufferManager]] = {}


def shared(memory: int) -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    """The block cache of `memory` bytes every table partition of this process shares, and
    the write-buffer manager that charges their memtables to it (made once per size)."""
    if memory not in _SHARED:
        cache = rocksdict.Cache(memory)
        manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            memory // 2, False, cache)
        _SHARED[memory] = (cache, manager)
    return _SHARED[memory]


class _SharedOptions(faust_rocksdb.RocksDBOptions):
    """Faust's options for one partition's instance, with the process's shared cache and
    write-buffer manager in place of a cache of its own."""

    memory: int = 0

    def as_options(self) -> Any:
        options = super().as_options()
        cache, manager = shared(self.memory)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(manager)
        return options


class Store(faust_rocksdb.Store):
    """Faust's RocksDB store, keeping its key index compact; with `options["shared_memory"]`
    (bytes), its instances share one cache and write-buffer budget (see the module's text)."""

    def __init__(self, *args: Any, options: dict | None = None, **kwargs: Any) -> None:
        options = dict(options or {})
        memory = int(options.pop("shared_memory", 0))
        super().__init__(*args, options=options, **kwargs)
        if memory:
            self.rocksdb_options = with_shared_memory(self.rocksdb_options, memory)

    def _encode_key(self, key: Any) -> bytes:
        # A copy: the json codec's orjson leaves each result in the 4 KiB buffer it wrote
        # into, and Faust's key index keeps the last 1,000 keys of every table
        # (`table_key_index_size`): 20 MB of a worker after 100,000 alarms (tracemalloc).
        return bytes(memoryview(super()._encode_key(key)))


def with_shared_memory(options: faust_rocksdb.RocksDBOptions,
                       memory: int) -> faust_rocksdb.RocksDBOptions:
    """`options` (Faust's, for one partition), opening instances that share `memory` bytes."""
    shared_options = _SharedOptions.__new__(_SharedOptions)
    shared_options.__dict__.update(vars(options))
    shared_options.memory = memory
    return shared_options


STORES.aliases.setdefault(URL.removesuffix("://"), f"{__name__}:Store")
