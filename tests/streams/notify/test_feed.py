"""The department stream's log and cursors (no broker): what a client gets on a first
connection, on a reconnection with Last-Event-ID, and live."""

import asyncio
import json
from datetime import timedelta

import pytest

from schemas import Task
from schemas.codec import dump
from streams.notify.feed import Cursor, DepartmentLog, _task, stream
from tests.agents.logic.test_deadlines import Desk
from tests.conftest import T0

PLANNED = list(Desk().tasks.values())[0]  # a real task of the lab fire


def task(n: int, revision: int = 1, status: str = "dispatched", hours: float = 0) -> Task:
    return PLANNED.model_copy(update={
        "task_id": f"inc-{n}.cordon", "revision": revision, "status": status,
        "created_at": T0 + timedelta(minutes=n), "updated_at": T0 + timedelta(hours=hours)})


def parse(chunks: list[bytes]) -> list[tuple[str | None, str, str]]:
    """(id, event, data) of each event; comments and retry lines dropped."""
    out = []
    for block in b"".join(chunks).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(":"))
        if "event" in fields:
            out.append((fields.get("id"), fields["event"], fields["data"]))
    return out


async def take(gen, n: int) -> list[bytes]:
    """The first `n` events (and what came with them)."""
    chunks = []
    while sum(c.count(b"event: ") for c in chunks) < n:
        chunks.append(await asyncio.wait_for(gen.__anext__(), 2))
    return chunks


def test_cursor_text_round_trips_and_bad_ones_are_named():
    assert Cursor.parse("3-0-12-1", 4) == {0: 3, 1: 0, 2: 12, 3: 1}
    assert Cursor({0: 3, 2: 12, 3: 1}).text(4) == "3-0-12-1"
    for bad in ("3-0-12", "a-b-c-d", "", "1--2-3"):
        with pytest.raises(ValueError, match="4 offsets"):
            Cursor.parse(bad, 4)


def test_the_log_keeps_each_revision_once_and_forgets_the_oldest_past_its_limit():
    log = DepartmentLog(partitions=2, limit=3)
    log.add(0, 0, task(1))
    log.add(0, 1, task(1))           # the same snapshot again (at-least-once)
    log.add(1, 0, None)              # did not decode: only the cursor moves
    log.add(1, 1, task(2))
    assert [(e.partition, e.offset) for e in log.events] == [(0, 0), (1, 1)]
    assert log.head == {0: 2, 1: 2}
    log.add(0, 2, task(1, 2, "acknowledged"))
    log.add(1, 2, task(3))
    assert len(log.events) == 3 and log.floor == {0: 1}
    assert log.after(Cursor({0: 0, 1: 0})) is None          # older than what is held
    assert [e.offset for e in log.after(Cursor({0: 1, 1: 2}))] == [2, 2]
    assert log.after(Cursor({0: 3, 1: 9})) is None          # ahead of what was read


def test_the_snapshot_is_the_latest_of_each_open_task_and_of_those_finished_today():
    log = DepartmentLog(partitions=1, limit=100)
    for offset, t in enumerate([task(1), task(2), task(1, 2, "acknowledged"),
                                task(3, 1, "completed", hours=-30), task(4, 1, "rejected")]):
        log.add(0, offset, t)
    got = log.snapshot(T0)
    assert [(e.task_id, e.revision) for e in got] == [
        ("inc-1.cordon", 2), ("inc-2.cordon", 1), ("inc-4.cordon", 1)]
    assert Task.model_validate_json(got[0].body) == task(1, 2, "acknowledged")


def test_a_task_read_from_its_topic_is_held_as_the_line_of_json_a_stream_sends():
    planned = PLANNED
    log = DepartmentLog(partitions=1, limit=10)
    record = dump(planned)
    log.add(0, 0, _task(record, "whistle.tasks.fire_brigade"), record)
    log.add(0, 1, _task(b'{"task_id": 3}', "whistle.tasks.fire_brigade"))  # not a Task
    [event] = log.events
    assert (event.task_id, event.revision, event.status) == (planned.task_id, 1, "dispatched")
    assert event.body == record  # the record as read, not made again
    assert b"\n" not in event.body and Task.model_validate_json(event.body) == planned
    assert "接警出动".encode() in event.body  # UTF-8, not \u escapes
    assert event.created == planned.created_at.timestamp()
    assert log.head == {0: 2}


async def test_a_first_connection_gets_reset_snapshot_ready_then_live_events():
    log, closing = DepartmentLog(partitions=2, limit=100), asyncio.Event()
    log.add(0, 0, task(1))
    gen = stream(log, None, T0, closing, ping=5)
    got = parse(await take(gen, 3))
    assert [(i, e) for i, e, _ in got] == [(None, "reset"), (None, "task"), ("1-0", "ready")]
    log.add(1, 0, task(2))
    [(event_id, event, data)] = parse(await take(gen, 1))
    assert (event_id, event) == ("1-1", "task") and '"inc-2.cordon"' in data
    closing.set()
    for queue in log.listeners:  # what TaskFeed does when the worker stops
        queue.put_nowait(None)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(gen.__anext__(), 2)
    assert not log.listeners


async def test_a_reconnection_gets_exactly_what_it_missed():
    log, closing = DepartmentLog(partitions=2, limit=100), asyncio.Event()
    log.add(0, 0, task(1))
    log.add(1, 0, task(2))
    log.add(0, 1, task(1, 2, "acknowledged"))
    gen = stream(log, "1-1", T0, closing, ping=5)   # had inc-1 rev 1 and inc-2 rev 1
    got = parse(await take(gen, 2))
    assert [(i, e) for i, e, _ in got] == [("2-1", "task"), ("2-1", "ready")]
    assert '"revision":2' in got[0][2]
    await gen.aclose()


async def test_a_stale_cursor_starts_afresh_with_a_reset():
    log = DepartmentLog(partitions=1, limit=1)
    log.add(0, 0, task(1))
    log.add(0, 1, task(2))
    got = parse(await take(stream(log, "0", T0, asyncio.Event(), ping=5), 3))
    assert [e for _, e, _ in got] == ["reset", "task", "ready"]
    assert got[0][2] == '{"reason":"stale cursor"}'


async def test_an_idle_stream_sends_keep_alive_comments():
    gen = stream(DepartmentLog(partitions=1, limit=10), None, T0, asyncio.Event(), ping=0.05)
    await take(gen, 2)
    assert await asyncio.wait_for(gen.__anext__(), 1) == b": ping\n\n"
    await gen.aclose()


def test_a_record_of_several_lines_is_sent_as_one():
    pretty = json.dumps(json.loads(dump(PLANNED)), ensure_ascii=False, indent=2).encode()
    log = DepartmentLog(partitions=1, limit=10)
    log.add(0, 0, _task(pretty, "whistle.tasks.fire_brigade"), pretty)  # another producer's
    [event] = log.events
    assert b"\n" not in event.body and Task.model_validate_json(event.body) == PLANNED
