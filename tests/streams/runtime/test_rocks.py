"""RocksDB instances opened with a shared budget keep their memtables and cache within it."""

import os
import time

from faust.stores.rocksdb import RocksDBOptions

from streams.runtime.rocks import shared, with_shared_memory
from streams.runtime.store import store_url

MIB = 2**20


def test_every_instance_shares_one_cache_and_writes_within_it(tmp_path) -> None:
    budget = 4 * MIB
    options = with_shared_memory(RocksDBOptions(write_buffer_size=1 * MIB,
                                                max_write_buffer_number=2,
                                                use_rocksdict=True), budget)
    dbs = [options.open(tmp_path / f"table-{n}.db") for n in range(8)]
    cache, manager = shared(budget)
    value = os.urandom(1024)
    for i in range(24 * 1024):  # 24 MiB in all, 3 MiB each: more than the budget holds
        dbs[i % 8][f"key-{i}".encode()] = value
    assert manager.enabled() and manager.get_usage() > 0  # the memtables are charged...
    assert cache.get_usage() >= manager.get_usage()  # ...to the one cache
    # a soft limit: the memtables are charged in 256-KiB pieces, and RocksDB decides to flush
    # when a write comes, in its background threads, so with the writes over they may stay a
    # few pieces over the budget (CI: 4.47 MB of 4 MiB for 10 s; the cache 4.73 MB once);
    # without the shared manager these eight would hold up to 16 MiB. The cache's capacity
    # is soft too (blocks in use stay in it): 5.25 MiB of 4 once, here
    deadline = time.monotonic() + 10
    while manager.get_usage() > budget + MIB:
        assert time.monotonic() < deadline, f"memtables hold {manager.get_usage()} bytes"
        time.sleep(0.05)
    assert cache.get_usage() <= budget + 2 * MIB
    assert all(dbs[i % 8][f"key-{i}".encode()] == value for i in range(0, 24 * 1024, 997))
    for db in dbs:
        db.close()
    assert shared(budget) == (cache, manager)  # one per process and size


def test_the_store_urls() -> None:
    assert store_url("rocksdb://") == "whistle-rocksdb://"  # shared budget or not: options
    assert store_url("memory://") == "whistle-memory://"
