"""The board's stream of every department's tasks (no broker): one cursor over every
department's topic; a first connection, a reconnection with Last-Event-ID, a stale cursor,
live events from any department, and what it leaves behind when it ends."""

import asyncio

import pytest

from streams.notify.board_stream import BoardLog
from streams.notify.feed import Cursor, DepartmentLog, stream
from tests.conftest import T0
from tests.streams.notify.test_feed import parse, take, task


def logs(limit: int = 100) -> tuple[DepartmentLog, DepartmentLog]:
    return DepartmentLog(partitions=2, limit=limit), DepartmentLog(partitions=3, limit=limit)


def police_task(n: int, revision: int = 1, status: str = "dispatched"):
    return task(n, revision, status).model_copy(update={"department": "police",
                                                        "task_id": f"inc-{n}.cordon"})


def fire_task(n: int, revision: int = 1, status: str = "dispatched"):
    return task(n, revision, status).model_copy(update={"department": "fire_brigade",
                                                        "task_id": f"inc-{n}.fire_brigade"})


def test_the_cursor_joins_every_department_s_partitions_in_order():
    police, fire = logs()
    police.add(1, 0, police_task(1))
    fire.add(2, 4, fire_task(1))
    board = BoardLog([police, fire])
    assert board.partitions == 5 and board.bases == [0, 2]
    assert board.head.text(5) == "0-1-0-0-5"
    assert Cursor.parse("0-1-0-0-5", board.partitions) == {0: 0, 1: 1, 2: 0, 3: 0, 4: 5}


def test_after_is_each_department_s_missed_events_at_their_slots_or_none_when_stale():
    police, fire = logs(limit=2)
    police.add(0, 0, police_task(1))
    fire.add(0, 0, fire_task(1))
    fire.add(1, 0, fire_task(2))
    board = BoardLog([police, fire])
    missed = board.after(Cursor.parse("1-0-0-0-0", 5))
    assert [(e.task_id, e.partition, e.offset) for e in missed] == [
        ("inc-1.fire_brigade", 2, 0), ("inc-2.fire_brigade", 3, 0)]
    assert board.after(board.head) == []
    fire.add(2, 0, fire_task(3))  # the fire log forgets inc-1's event: a cursor before it is old
    assert board.after(Cursor.parse("1-0-0-0-0", 5)) is None
    assert board.after(Cursor.parse("1-0-1-1-9", 5)) is None  # ahead of what was read


def test_the_snapshot_is_every_department_s_oldest_first():
    police, fire = logs()
    police.add(0, 0, police_task(2))
    fire.add(1, 0, fire_task(1))
    fire.add(1, 1, fire_task(3, 1, "completed"))
    police.add(0, 1, police_task(2, 2, "acknowledged"))
    got = BoardLog([police, fire]).snapshot(T0)
    assert [(e.task_id, e.revision) for e in got] == [
        ("inc-1.fire_brigade", 1), ("inc-2.cordon", 2), ("inc-3.fire_brigade", 1)]


async def test_a_first_connection_gets_every_department_then_live_events_from_any():
    police, fire = logs()
    police.add(0, 0, police_task(1))
    fire.add(2, 0, fire_task(2))
    closing = asyncio.Event()
    board = BoardLog([police, fire])
    gen = stream(board, None, T0, closing, ping=5)
    got = parse(await take(gen, 4))
    assert [(i, e) for i, e, _ in got] == [(None, "reset"), (None, "task"), (None, "task"),
                                           ("1-0-0-0-1", "ready")]
    assert len(board.listeners) == 1 and len(police.listeners) == len(fire.listeners) == 1
    fire.add(1, 0, fire_task(3))
    police.add(1, 0, police_task(4))
    got = parse(await take(gen, 2))
    assert [(i, e) for i, e, _ in got] == [("1-0-0-1-1", "task"), ("1-1-0-1-1", "task")]
    assert '"inc-3.fire_brigade"' in got[0][2] and '"inc-4.cordon"' in got[1][2]
    closing.set()
    for log in (police, fire):  # what TaskFeed does when the worker stops
        for queue in log.listeners:
            queue.put_nowait(None)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(gen.__anext__(), 2)
    assert not police.listeners and not fire.listeners and not len(board.listeners)


async def test_a_reconnection_gets_exactly_what_it_missed_in_any_department():
    police, fire = logs()
    police.add(0, 0, police_task(1))
    fire.add(0, 0, fire_task(2))
    police.add(0, 1, police_task(1, 2, "acknowledged"))
    fire.add(2, 0, fire_task(5))
    gen = stream(BoardLog([police, fire]), "1-0-1-0-0", T0, asyncio.Event(), ping=5)
    got = parse(await take(gen, 3))
    assert [(i, e) for i, e, _ in got] == [("2-0-1-0-0", "task"), ("2-0-1-0-1", "task"),
                                           ("2-0-1-0-1", "ready")]
    assert '"revision":2' in got[0][2] and '"inc-5.fire_brigade"' in got[1][2]
    await gen.aclose()
    assert not police.listeners and not fire.listeners


async def test_a_stale_cursor_in_one_department_starts_afresh_with_a_reset():
    police, fire = logs(limit=1)
    fire.add(0, 0, fire_task(1))
    fire.add(0, 1, fire_task(2))
    got = parse(await take(stream(BoardLog([police, fire]), "0-0-0-0-0", T0, asyncio.Event(),
                                  ping=5), 3))
    assert [e for _, e, _ in got] == ["reset", "task", "ready"]
    assert got[0][2] == '{"reason":"stale cursor"}' and '"inc-2.fire_brigade"' in got[1][2]
