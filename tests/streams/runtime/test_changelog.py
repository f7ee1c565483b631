"""The tables' changelog records a stage keeps and sends itself (`streams.runtime.changelog`):
the same bytes Faust would send, on the same partition; Faust's own way outside a stage."""

from __future__ import annotations

import asyncio

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
        kept_table, kept_partition, _, _, raw_key, raw_value, headers, epoch = \
            written.kept[partition]
        faust_key, _ = topic.prepare_key(key, table.key_serializer, None, {})
        faust_value, _ = topic.prepare_value(value, table.value_serializer, None, {})
        assert (kept_table, kept_partition) == (table, partition)
        assert raw_key == faust_key and raw_value == faust_value
        assert not headers and epoch is None  # no rebalance yet: stamped when sent
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


class _Message:
    def __init__(self, partition: int, offset: int, timestamp: float,
                 generation: int | None) -> None:
        self.topic, self.partition, self.offset, self.timestamp = "t", partition, offset, timestamp
        self.headers = ([] if generation is None
                        else [("other", b"x"), (changelog.GENERATION, str(generation).encode())])


class _Event:
    def __init__(self, *args) -> None:
        self.message = _Message(*args)


def offsets(events) -> list[int]:
    return [e.message.offset for e in events]


def test_a_zombies_late_records_are_skipped_when_the_changelog_is_read(table) -> None:
    # worker B (generation 3) wrote offsets 0-1; cut off, its partition went to A
    # (generation 4: offsets 2-3, written at t=20-21); B's unsent records from t=10-11
    # arrived once it was back (offsets 4-5); then B owned the partition again (6 at t=40)
    log = [_Event(0, 0, 8.0, 3), _Event(0, 1, 9.0, 3), _Event(0, 2, 20.0, 4),
           _Event(0, 3, 21.0, 4), _Event(0, 4, 10.0, 3), _Event(0, 5, 11.0, 3),
           _Event(0, 6, 40.0, 6)]
    assert offsets(table.fenced(log)) == [0, 1, 2, 3, 6]
    # read again from the start (a partition assigned again): the same, not all skipped
    assert offsets(table.fenced(log[:3])) == [0, 1, 2]
    assert offsets(table.fenced(log[3:])) == [3, 6]


def test_a_zombie_record_made_after_the_new_owners_is_skipped_too(table) -> None:
    # recorded by the cluster chaos module (CI, whistle-incidents-changelog[0]@1022-1035):
    # generation 7 wrote an incident three times; the cut-off worker, back, handled the
    # message in hand and wrote the incident as generation 6 two seconds later, without the
    # alarm generation 7 had attached: kept, it lost that alarm from its incident
    log = [_Event(0, 1022, 1796611446.122, 7), _Event(0, 1028, 1796611446.138, 7),
           _Event(0, 1034, 1796611446.159, 7), _Event(0, 1035, 1796611448.247, 6),
           _Event(0, 1036, 1796611450.000, 7)]
    assert offsets(table.fenced(log)) == [1022, 1028, 1034, 1036]


def test_records_without_a_generation_and_a_group_begun_again_are_kept(table) -> None:
    week = 7 * 86_400.0
    log = [_Event(1, 0, 5.0, None), _Event(1, 1, 6.0, 9), _Event(1, 2, 7.0, None),
           # the group was empty for a week, Kafka forgot it, and it began again at 1: kept
           _Event(1, 3, 7.0 + week, 1), _Event(1, 4, 8.0 + week, 2),
           # then a zombie of its generation 1 after its generation 2: skipped
           _Event(1, 5, 9.0 + week, 1), _Event(1, 6, 10.0 + week, 2)]
    assert offsets(table.fenced(log)) == [0, 1, 2, 3, 4, 6]


async def test_a_sent_record_carries_its_writers_generation(table) -> None:
    """What the reader fences by: the generation of the group when the record was sent."""
    sent = []

    class Producer:
        async def send(self, topic, value, key, partition, headers):
            sent.append(headers)
            return asyncio.get_running_loop().create_future()

    class App:
        consumer_generation_id = 7
        producer = type("P", (), {"_ensure_producer": lambda self: Producer()})()

    with changelog.changes() as written:
        table.send_changelog(0, "k", {"v": 1})
    await written.send(App())
    assert sent == [[(changelog.GENERATION, b"7")]]


async def test_a_record_carries_the_epoch_its_writer_held_the_partition_since(table) -> None:
    """Stamped when the stage writes: the generation since which the worker has held the
    partition, rebalance after rebalance; a generation missed begins every epoch again."""
    sent = []

    class Producer:
        async def send(self, topic, value, key, partition, headers):
            sent.append((partition, dict(headers)[changelog.GENERATION]))
            return asyncio.get_running_loop().create_future()

    class App:
        consumer_generation_id = 0
        producer = type("P", (), {"_ensure_producer": lambda self: Producer()})()

    name = table.changelog_topic.get_topic_name()

    async def rebalance(generation: int, *partitions: int) -> None:
        App.consumer_generation_id = generation
        await table.on_rebalance({faust.types.TP(name, p) for p in partitions}
                                 | {faust.types.TP("whistle.alarms", 9)}, set(), set(),
                                 generation)

    await rebalance(3, 0, 1)
    await rebalance(4, 1, 2)  # kept 1, given 2
    with changelog.changes() as held_up:  # written in generation 4, sent after the next
        table.send_changelog(1, "a", {"v": 1})
    await rebalance(5, 1, 2)
    with changelog.changes() as written:
        table.send_changelog(1, "b", {"v": 2})
        table.send_changelog(2, "c", {"v": 3})
        table.send_changelog(3, "d", {"v": 4})  # not held: the generation it is sent in
    await written.send(App())
    await held_up.send(App())  # the same epoch as the record sent before it: not skipped
    await rebalance(7, 1, 2)  # generation 6 went on without this worker: begun again
    with changelog.changes() as rejoined:
        table.send_changelog(1, "e", {"v": 5})
    await rejoined.send(App())
    assert sent == [(1, b"3"), (2, b"4"), (3, b"5"), (1, b"3"), (1, b"7")]


async def test_a_record_taken_after_the_group_moved_on_does_not_mark_the_store() -> None:
    """A cut-off worker's late record must not become where its store stands: it would read
    the changelog from past its successor's records when the partition came back."""
    marked = []
    table = type("T", (), {"data": type("D", (), {
        "set_persisted_offset": lambda self, tp, offset: marked.append(offset)})()})()
    app = type("A", (), {"consumer_generation_id": 5})()
    # (5, -1): aiokafka's answer for a batch the broker had already (a duplicate sequence)
    for sent_in, offset in ((5, 10), (4, 11), (5, -1)):
        taken = asyncio.get_running_loop().create_future()
        taken.set_result(type("M", (), {"offset": offset})())
        changelog._persisted(table, ("t", 0), app, sent_in, taken)
    assert marked == [10]


def test_get_reads_the_store_once_and_keeps_faust_s_defaults(table) -> None:
    reads: list[str] = []

    class Counting(dict):
        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

        def __contains__(self, key):
            reads.append(f"in {key}")
            return super().__contains__(key)

    table.data.data = Counting(here={"level": "II"})
    assert table.get("here") == {"level": "II"}
    assert table.get("missing") is None and table.get("missing", []) == []
    assert reads == ["here", "missing", "missing"]  # one read each, no membership test first
    counted = table.app.Table("counts", default=int, partitions=4)
    assert counted.get("never-set") == 0  # a table with a default makes the value, as Faust's
