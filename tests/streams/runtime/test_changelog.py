"""The tables' changelog records a stage keeps and sends itself (`streams.runtime.changelog`):
the same bytes Faust would send, on the same partition; Faust's own way outside a stage."""

from __future__ import annotations

import faust
import pytest

from streams.runtime import changelog

KEYS = ["inc-20260516-3f9a1c", "jyh-银丰-实验室-3", "a\"quote\\and\nnewline", ""]
VALUES = [
    {"incident_id": "inc-1", "title": "3号实验室 火警", "level": None, "n": 3, "x": 2.5,
     "ok": True, "tasks": ["t1", "t2"], "nested": {"部门": ["派出所", None]}},
    ["jyh-yinfeng-lab-3", 1.0, 3600, None],
    [],
    "纯文本",
]


@pytest.fixture
def table():
    app = faust.App("changelog-test", broker="kafka://127.0.0.1:1", store="memory://",
                    Table=changelog.Table)
    return app.Table("incidents", default=None, partitions=4)


def test_a_kept_record_has_the_bytes_and_partition_faust_would_send(table) -> None:
    topic = table.changelog_topic
    with changelog.changes() as written:
        for partition, (key, value) in enumerate(zip(KEYS, VALUES, strict=True)):
            sent = table.send_changelog(partition, key, value)
            assert sent.message.partition == partition  # what Faust's on_key_set reads
    assert len(written.kept) == len(KEYS)
    for partition, (key, value) in enumerate(zip(KEYS, VALUES, strict=True)):
        kept_table, kept_partition, _, _, raw_key, raw_value, headers = written.kept[partition]
        faust_key, _ = topic.prepare_key(key, table.key_serializer, None, {})
        faust_value, _ = topic.prepare_value(value, table.value_serializer, None, {})
        assert (kept_table, kept_partition) == (table, partition)
        assert raw_key == faust_key and raw_value == faust_value
        assert not headers
    assert written.kept[1][4].decode("utf-8") == '"jyh-银丰-实验室-3"'  # UTF-8, not \u escapes


def test_outside_a_stage_a_write_goes_faust_s_way(table, monkeypatch) -> None:
    through_faust: list[tuple] = []
    monkeypatch.setattr(faust.Table, "send_changelog",
                        lambda self, partition, key, value, *a: through_faust.append(
                            (partition, key, value)))
    table.send_changelog(2, "inc-1", {"a": 1})
    with changelog.changes() as written:
        table.send_changelog(None, "inc-2", {"a": 2})  # no partition: Faust decides
    assert through_faust == [(2, "inc-1", {"a": 1}), (None, "inc-2", {"a": 2})]
    assert written.kept == []


async def test_before_the_producer_starts_kept_records_are_handed_back(table,
                                                                       monkeypatch) -> None:
    handed: list[tuple] = []
    monkeypatch.setattr(faust.Table, "send_changelog",
                        lambda self, partition, key, value, *a: handed.append((partition, key)))
    with changelog.changes() as written:
        table.send_changelog(1, "inc-1", {"a": 1})
        table.send_changelog(3, "inc-2", {"a": 2})
    await written.send(table.app)  # Faust's test context: the producer never started
    assert handed == [(1, "inc-1"), (3, "inc-2")]
    assert written.kept == []
