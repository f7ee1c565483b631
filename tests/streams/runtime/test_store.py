"""`memory://` tables keep their values packed as JSON (streams.runtime.store)."""

from __future__ import annotations

import gc

import pytest

from streams.app import build
from streams.runtime.store import PackedValues, Store, store_url
from streams.settings import Settings


def test_values_are_kept_as_utf8_json_and_each_read_is_a_fresh_copy():
    d = PackedValues()
    d["inc-1"] = {"name": "3号实验室", "task_ids": ["a", "b"], "level": "II", "n": 1.5}
    assert (d.raw("inc-1")
            == '{"name":"3号实验室","task_ids":["a","b"],"level":"II","n":1.5}'.encode())
    read = d["inc-1"]
    read["task_ids"].append("c")  # changing a copy changes nothing kept
    assert d["inc-1"]["task_ids"] == ["a", "b"]
    assert not gc.is_tracked(d.raw("inc-1"))  # the collector does not walk it


def test_a_small_value_takes_about_its_own_size():
    import tracemalloc

    d = PackedValues()
    tracemalloc.start()
    try:
        for i in range(10_000):
            d[f"a{i}"] = [f"inc-{i}", "0:1", "open", []]  # an alarms-seen record
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used / 10_000 < 250  # key, entry and ~40 bytes of JSON (orjson's own: 4.1 KB)


def test_it_behaves_as_a_dict_for_everything_faust_asks_of_it():
    d = PackedValues()
    d.update({"a": [1, 2], "b": None, "c": {"x": True}})
    assert len(d) == 3 and list(d) == ["a", "b", "c"] and "b" in d and "z" not in d
    assert d.get("b", "default") is None  # a stored null is not a missing key
    assert d.get("z") is None and d.get("z", 7) == 7
    assert dict(d.items()) == {"a": [1, 2], "b": None, "c": {"x": True}}
    assert d.pop("a") == [1, 2] and d.pop("a", "gone") == "gone"
    with pytest.raises(KeyError):
        d.pop("a")
    with pytest.raises(KeyError):
        d["a"]
    del d["c"]
    d.clear()
    assert len(d) == 0


def test_memory_tables_use_it_and_rocksdb_is_left_alone(tmp_path):
    assert store_url("memory://") == "whistle-memory://"
    assert store_url("rocksdb://") == "whistle-rocksdb://"
    w = build(Settings(broker="kafka://127.0.0.1:1", store="memory://", data=tmp_path))
    for table in (w.tables.incidents, w.tables.timelines, w.tables.playbooks):
        assert isinstance(table.data, Store) and isinstance(table.data.data, PackedValues)
    w.tables.incidents.data["inc-1"] = {"status": "open"}
    assert w.tables.incidents.data["inc-1"] == {"status": "open"}


async def test_a_rebalance_drops_the_keys_of_partitions_moved_away(tmp_path):
    """A key a stage wrote stays only while its partition is this worker's: the lists are
    gathered from every worker, and a moved partition's stale copy was listed beside its new
    owner's (the cluster chaos test)."""
    from faust.types import TP

    from streams.runtime.changelog import changes

    w = build(Settings(broker="kafka://127.0.0.1:1", store="memory://", data=tmp_path))
    table = w.tables.incidents
    with changes():  # as a stage writes: the changelog records are kept, not sent
        for partition, key in enumerate(["inc-a", "inc-b", "inc-c"]):
            table.send_changelog(partition, key, {"status": "open"})
            table.data[key] = {"status": "open"}
    table.data["inc-outside"] = {"status": "open"}  # its partition unknown: left alone
    log = table.changelog_topic.get_topic_name()
    everywhere = {TP(w.tables.playbooks.changelog_topic.get_topic_name(), p) for p in range(4)}
    await table.on_rebalance({TP(log, 0), TP(log, 2), TP("whistle.alarms", 1)} | everywhere,
                             {TP(log, 1)}, set(), 2)
    assert sorted(table.data) == ["inc-a", "inc-c", "inc-outside"]
    await table.on_rebalance({TP(log, 2)} | everywhere, {TP(log, 0)}, set(), 3)
    assert sorted(table.data) == ["inc-c", "inc-outside"]
    assert dict(table.data.items())["inc-c"] == {"status": "open"}
