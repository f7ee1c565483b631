"""The worker process closes its loop one turn after everything stopped, not mode's second."""

from __future__ import annotations

import asyncio
import inspect

import mode.worker

from streams.runtime import closing
from streams.runtime.closing import LAST_TURN, Worker


def test_the_last_pause_is_one_turn_and_mode_still_takes_it(monkeypatch):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(closing.asyncio, "sleep", sleep)
    asyncio.run(Worker._sentinel_task(object.__new__(Worker)))
    assert slept == [LAST_TURN] and LAST_TURN < 0.5
    # the override counts only while mode's Worker closes its loop through it
    assert "self._sentinel_task()" in inspect.getsource(mode.worker.Worker)
