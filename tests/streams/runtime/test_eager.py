"""`eager` runs a coroutine at once, and what has to wait in a task, as asyncio would."""

from __future__ import annotations

import asyncio

import pytest

from streams.runtime.eager import eager


async def test_a_coroutine_that_need_not_wait_is_done_without_a_task() -> None:
    queue: asyncio.Queue = asyncio.Queue(maxsize=2)
    tasks = len(asyncio.all_tasks())
    assert eager(queue.put(1)) is None
    assert queue.get_nowait() == 1 and len(asyncio.all_tasks()) == tasks


async def test_an_error_is_raised_at_once() -> None:
    async def fails() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        eager(fails())


async def test_a_coroutine_that_waits_goes_on_in_a_task_and_returns_its_value() -> None:
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)
    queue.put_nowait("first")
    steps: list[str] = []

    async def hand_over() -> str:
        steps.append("before")
        await queue.put("second")  # full: waits for a get
        steps.append("put")
        await asyncio.sleep(0)     # a bare yield
        return "done"

    rest = eager(hand_over())
    assert rest is not None and steps == ["before"] and not rest.done()
    assert await queue.get() == "first"
    assert await rest == "done" and steps == ["before", "put"]
    assert queue.get_nowait() == "second"


async def test_a_waiting_rest_raises_what_the_awaited_future_raises() -> None:
    future = asyncio.get_running_loop().create_future()

    async def waits() -> None:
        await future

    rest = eager(waits())
    assert rest is not None
    future.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        await rest


async def test_cancelling_the_rest_cancels_what_it_waits_on_and_lets_it_clean_up() -> None:
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)
    queue.put_nowait("first")
    cleaned: list[str] = []

    async def hand_over() -> None:
        try:
            await queue.put("second")
        finally:
            cleaned.append("finally")

    rest = eager(hand_over())
    assert rest is not None
    await asyncio.sleep(0)
    rest.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rest
    assert cleaned == ["finally"]
    assert queue.get_nowait() == "first" and queue.empty()  # "second" was never put
    queue.put_nowait("third")  # the cancelled putter left the queue usable
    assert queue.get_nowait() == "third"
