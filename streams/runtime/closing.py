"""The worker process without mode's last idle second.

mode's Worker, once every service has stopped and every task is gathered, runs one more task
that only sleeps a second before it closes the event loop (`Worker._sentinel_task`). Nothing
is left to run by then: services stopped, their tasks awaited, all futures given up to a
second to end (`_gather_all`). So every stop took a second longer than its work: a `whistle up`
stopped in 1.9-2.2 s, 1.0 s of it that sleep (its log; docs/bench/tenth-stop/stop.txt), and
0.9-1.1 s with this one. Here the sleep is one event-loop turn long, enough for callbacks the
last stops scheduled.

    Worker(whistle.app, loglevel="info", quiet=True).execute_from_commandline()
"""

from __future__ import annotations

import asyncio

import faust

__all__ = ["LAST_TURN", "Worker"]

LAST_TURN = 0.05  # seconds the loop runs after everything stopped, before it closes


class Worker(faust.Worker):
    """faust.Worker, closing its loop LAST_TURN s after everything stopped instead of 1 s."""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(LAST_TURN)
